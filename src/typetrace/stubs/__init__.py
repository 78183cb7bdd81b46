"""Stubs: turn the call traces of a module into annotations, as ``.pyi`` text or for ``apply``."""

from __future__ import annotations

from typetrace.stubs.build import StubBuildError as StubBuildError
from typetrace.stubs.build import build_stub as build_stub
from typetrace.stubs.model import ClassStub as ClassStub
from typetrace.stubs.model import FunctionStub as FunctionStub
from typetrace.stubs.model import ModuleStub as ModuleStub
from typetrace.stubs.model import ParameterKind as ParameterKind
from typetrace.stubs.model import ParameterStub as ParameterStub
from typetrace.stubs.model import PropertyAccessor as PropertyAccessor

__all__ = [
    "ClassStub",
    "FunctionStub",
    "ModuleStub",
    "ParameterKind",
    "ParameterStub",
    "PropertyAccessor",
    "StubBuildError",
    "build_stub",
]
