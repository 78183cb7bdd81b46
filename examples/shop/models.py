"""Items, carts and customers."""

from __future__ import annotations


class Item:
    def __init__(self, name, price, tags=()):
        self.name = name
        self.price = price
        self.tags = set(tags)

    @property
    def label(self):
        return f"{self.name} ({self.price:.2f})"

    @classmethod
    def free(cls, name):
        return cls(name, 0.0)

    @staticmethod
    def normalize_name(name):
        return name.strip().lower()

    def __repr__(self):
        return f"Item({self.name!r}, {self.price!r})"


class Cart:
    def __init__(self, owner):
        self.owner = owner
        self.lines = {}

    def add(self, item, quantity=1):
        self.lines[item.name] = self.lines.get(item.name, 0) + quantity
        return self

    def items(self):
        for name, quantity in sorted(self.lines.items()):
            yield name, quantity

    def find(self, name):
        return name if name in self.lines else None

    class Summary:
        def __init__(self, count, total):
            self.count = count
            self.total = total

        def as_dict(self):
            return {"count": self.count, "total": self.total}
