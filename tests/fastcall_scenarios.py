"""Programs for the tests that compare tracing with and without the C fast path of
calls with cached types (see typetrace/_fastcalls.h).

Each scenario calls functions of this module, which is traced with the default
inferrer because its name is not that of a test module. Most calls repeat, so that
the recorder's caches fill and later calls can take the fast path.
"""

from __future__ import annotations

import asyncio
import gc
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from support import MODULE

#: Calls of each function in a scenario's loop.
REPEATS = 30


@dataclass(frozen=True)
class Scenario:
    name: str
    run: Callable[[], object]
    #: Whether some calls of the scenario can start and return on the fast path.
    takes_fast_path: bool = True
    #: Whether the order of the traces depends on thread scheduling.
    threaded: bool = False


def pair(first, second):  # type: ignore[no-untyped-def]
    return first


def swap(first, second):  # type: ignore[no-untyped-def]
    return second


def several_classes() -> None:
    values: list[Any] = [1, "a", 2.5, b"b", 3j, (1,)]
    for number in range(REPEATS):
        value = values[number % len(values)]
        pair(value, number)
        swap(number, value)


def maybe(value):  # type: ignore[no-untyped-def]
    return value


def negate(flag):  # type: ignore[no-untyped-def]
    return not flag


def none_and_bool() -> None:
    for number in range(REPEATS):
        maybe(None)
        maybe(number % 2 == 0)
        maybe(number)
        negate(number % 3 == 0)
        negate(None)


class Builder:
    def __init__(self, size: int = 0) -> None:
        self.size = size

    def grow(self):  # type: ignore[no-untyped-def]
        self.size += 1
        return self

    def copy(self):  # type: ignore[no-untyped-def]
        return Builder(self.size)

    def either(self, flag):  # type: ignore[no-untyped-def]
        return self if flag else Builder()

    def measure(self, extra):  # type: ignore[no-untyped-def]
        return self.size + extra

    @classmethod
    def make(cls):  # type: ignore[no-untyped-def]
        return cls()

    @classmethod
    def make_other(cls):  # type: ignore[no-untyped-def]
        return Builder() if cls is not Builder else SubBuilder()

    @staticmethod
    def helper(value):  # type: ignore[no-untyped-def]
        return value


class SubBuilder(Builder):
    pass


def methods_and_receivers() -> None:
    builder = Builder()
    sub = SubBuilder()
    for number in range(REPEATS):
        builder.grow().grow()
        builder.copy()
        builder.either(number % 2 == 0)
        builder.measure(number)
        builder.measure(0.5)
        Builder.make()
        SubBuilder.make()
        Builder.make_other()
        SubBuilder.make_other()
        Builder.helper(number)
        sub.grow()
        sub.copy()


def alternate(flag):  # type: ignore[no-untyped-def]
    return 1 if flag else "one"


def three_way(number):  # type: ignore[no-untyped-def]
    return (1, "one", 1.0)[number % 3]


def alternating_returns() -> None:
    for number in range(REPEATS):
        alternate(number % 2 == 0)
        three_way(number)


def countdown(number):  # type: ignore[no-untyped-def]
    return 0 if number == 0 else countdown(number - 1)


def fib(number):  # type: ignore[no-untyped-def]
    return number if number < 2 else fib(number - 1) + fib(number - 2)


def recursion() -> None:
    countdown(40)
    countdown(5)
    fib(10)


def fails_when_negative(number):  # type: ignore[no-untyped-def]
    if number < 0:
        raise ValueError(number)
    return number


def catches(number):  # type: ignore[no-untyped-def]
    try:
        return fails_when_negative(number)
    except ValueError:
        return None


def deep_failure(depth):  # type: ignore[no-untyped-def]
    if depth == 0:
        raise KeyError(depth)
    return deep_failure(depth - 1)


def exceptions() -> None:
    for number in range(-REPEATS // 2, REPEATS // 2):
        catches(number)
        try:
            fails_when_negative(number)
        except ValueError:
            pass
        try:
            deep_failure(number % 4)
        except KeyError:
            pass


def count_up(limit):  # type: ignore[no-untyped-def]
    for number in range(limit):
        yield number
    return "done"


def echo():  # type: ignore[no-untyped-def]
    received = None
    while True:
        try:
            received = yield received
        except ValueError:
            received = "thrown"


def delegate(limit):  # type: ignore[no-untyped-def]
    result = yield from count_up(limit)
    return result


def generators() -> None:
    for number in range(REPEATS // 3):
        list(count_up(number % 4))
        list(delegate(2))
        generator = echo()
        next(generator)
        generator.send(number)
        generator.send(None)
        generator.throw(ValueError("into the generator"))
        generator.close()
        pair(number, "between")
        partial = count_up(5)
        next(partial)
        partial.close()


async def pause(value):  # type: ignore[no-untyped-def]
    await asyncio.sleep(0)
    return value


async def gather_pauses(count):  # type: ignore[no-untyped-def]
    results = [await pause(number) for number in range(count)]
    results.append(await pause("last"))
    return len(results)


def coroutines() -> None:
    for number in range(3):
        asyncio.run(gather_pauses(REPEATS // 3 + number))


def packed(*args, **kwargs):  # type: ignore[no-untyped-def]
    return len(args) + len(kwargs)


def head(first, *rest):  # type: ignore[no-untyped-def]
    return first


def options(name, **settings):  # type: ignore[no-untyped-def]
    return name


def packed_arguments() -> None:
    for number in range(REPEATS):
        packed()
        packed(number, "a")
        packed(key=number)
        head(number)
        head(number, "rest", 2.0)
        options("a")
        options("a", size=number)


def first_item(items):  # type: ignore[no-untyped-def]
    return items[0] if items else None


def as_list(value):  # type: ignore[no-untyped-def]
    return [value]


def lookup(table, key):  # type: ignore[no-untyped-def]
    return table.get(key)


def containers() -> None:
    for number in range(REPEATS):
        first_item([number])
        first_item(["a"])
        first_item([])
        first_item((number, "b"))
        as_list(number)
        as_list("a")
        lookup({"a": number}, "a")
        lookup({1: "x"}, 1)
        maybe(len([number]))


def captured(value):  # type: ignore[no-untyped-def]
    def inner():  # type: ignore[no-untyped-def]
        return value

    return inner()


def captured_and_rebound(value, other):  # type: ignore[no-untyped-def]
    def inner():  # type: ignore[no-untyped-def]
        return value

    value = other
    return inner()


def counter(start):  # type: ignore[no-untyped-def]
    def step():  # type: ignore[no-untyped-def]
        nonlocal start
        start += 1
        return start

    return step


def cell_parameters() -> None:
    for number in range(REPEATS):
        captured(number)
        captured("a")
        captured_and_rebound(number, "b")
        counter(number)()


def keyword_only(value, *, scale=1, label="x"):  # type: ignore[no-untyped-def]
    return value * scale


def positional_only(value, /, other=None):  # type: ignore[no-untyped-def]
    return other


def mixed(first, /, second, *, third):  # type: ignore[no-untyped-def]
    return third


def parameter_kinds() -> None:
    for number in range(REPEATS):
        keyword_only(number)
        keyword_only(number, scale=2.0)
        keyword_only("a", label=None)
        positional_only(number)
        positional_only(number, "b")
        mixed(1, second=2, third="c")
        mixed("a", "b", third=number)


def worker(offset):  # type: ignore[no-untyped-def]
    total = 0
    for number in range(REPEATS):
        total += maybe(number + offset)
        pair(str(number), offset)
        alternate(number % 2 == 0)
    return total


def threads() -> None:
    started = [threading.Thread(target=worker, args=(offset,)) for offset in range(4)]
    for thread in started:
        thread.start()
    worker(100)
    for thread in started:
        thread.join()


def instantiate(cls):  # type: ignore[no-untyped-def]
    return cls()


def replaced_classes() -> None:
    # Each class dies before the next is made, so CPython often gives the new class
    # the memory, and so the id, of the old one.
    for number in range(REPEATS):
        cls = type(f"Short{number}", (), {"__module__": MODULE})
        instance = cls()
        pair(instance, number)
        pair(instance, number)
        pair(instance, number)
        maybe(instance)
        instantiate(cls)
        del cls, instance
        gc.collect()


def imports_inside(value):  # type: ignore[no-untyped-def]
    import os.path

    return os.path.basename(value)


def import_statements() -> None:
    for _number in range(REPEATS):
        imports_inside("a/b")


def defaults(value, fallback=None):  # type: ignore[no-untyped-def]
    return fallback if value is None else value


def no_parameters():  # type: ignore[no-untyped-def]
    return 0


def wide(a, b, c, d, e, f):  # type: ignore[no-untyped-def]
    return f


def unusual_names(local_values, id, type, *, key_of="k"):  # type: ignore[no-untyped-def]  # noqa: A002
    return key_of


def parameter_counts() -> None:
    for number in range(REPEATS):
        no_parameters()
        defaults(None)
        defaults(None, number)
        defaults(number)
        wide(1, "a", 2.0, None, True, number)
        unusual_names(1.0, "x", b"y")
        unusual_names(2.0, "x", b"y", key_of=None)


def lazy_range(limit: int) -> Iterator[int]:
    yield from range(limit)


def mixed_with_generators() -> None:
    # Plain calls while a generator of the same module is suspended.
    suspended = lazy_range(REPEATS)
    next(suspended)
    for number in range(REPEATS):
        pair(number, next(suspended, None))
    suspended.close()


def long_count(limit, switch_at):  # type: ignore[no-untyped-def]
    for number in range(limit):
        if number == switch_at:
            yield "switched"
        elif number == switch_at + 1:
            yield None
        else:
            yield number
    return limit


def chained(depth, limit):  # type: ignore[no-untyped-def]
    if depth == 0:
        result = yield from long_count(limit, limit - 3)
        return result
    return (yield from chained(depth - 1, limit))


def long_generators() -> None:
    # Yields after the first ones whose types are all inferred: of known classes, of a
    # new class, and None, through delegation, and in generators closed early.
    for number in range(REPEATS // 3):
        list(long_count(40, 20 + number))
        list(chained(3, 30))
        partial = long_count(50, 45)
        for _ in range(25 + number):
            next(partial)
        partial.close()


def accumulator():  # type: ignore[no-untyped-def]
    received = []
    while True:
        try:
            value = yield len(received)
        except KeyError:
            continue
        received.append(value)


def sent_values() -> None:
    # Values sent after the first ones whose types are all inferred: of known
    # classes, of a new class, and None, with throw() and close() between them.
    for number in range(REPEATS // 3):
        generator = accumulator()
        next(generator)
        for value in range(20 + number):
            generator.send(value)
        generator.send("new" if number % 2 else None)
        generator.throw(KeyError("caught"))
        for value in range(5):
            generator.send((value,))
        next(generator)
        generator.close()


async def wait_for_value(value):  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    loop.call_soon(future.set_result, value)
    # The future passes itself up to the event loop, a suspension with a value.
    return await future


async def many_waits(count):  # type: ignore[no-untyped-def]
    total = 0
    for number in range(count):
        total += await wait_for_value(number)
    return total


def awaited_futures() -> None:
    asyncio.run(many_waits(REPEATS))


SCENARIOS = [
    Scenario("several-classes", several_classes),
    Scenario("none-and-bool", none_and_bool),
    Scenario("methods-and-receivers", methods_and_receivers),
    Scenario("alternating-returns", alternating_returns),
    Scenario("recursion", recursion),
    Scenario("exceptions", exceptions),
    Scenario("generators", generators),
    Scenario("coroutines", coroutines, takes_fast_path=False),
    Scenario("packed-arguments", packed_arguments, takes_fast_path=False),
    Scenario("containers", containers),
    Scenario("cell-parameters", cell_parameters),
    Scenario("parameter-kinds", parameter_kinds),
    Scenario("threads", threads, threaded=True),
    Scenario("replaced-classes", replaced_classes),
    # 3.11's evaluation function and 3.12 keep these calls off the fast path.
    Scenario("import-statements", import_statements, takes_fast_path=False),
    Scenario("parameter-counts", parameter_counts),
    Scenario("mixed-with-generators", mixed_with_generators),
    Scenario("long-generators", long_generators, takes_fast_path=False),
    Scenario("awaited-futures", awaited_futures, takes_fast_path=False),
    Scenario("sent-values", sent_values, takes_fast_path=False),
]
