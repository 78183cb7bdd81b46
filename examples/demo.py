"""Run the shop: the program that typetrace's demo traces."""

import asyncio
import sys

from shop.models import Cart, Item
from shop.pricing import cart_total, catalog_of, cheapest, convert_all, describe, price_steps, summarize


def build_catalog():
    items = [Item("apple", 0.5, ["fruit"]), Item("bread", 2.25), Item.free("bag")]
    items.append(Item(Item.normalize_name("  Cheese "), 7.0, ("dairy",)))
    return catalog_of(items)


def shop(owner, catalog):
    cart = Cart(owner)
    cart.add(catalog["apple"], 6).add(catalog["bread"]).add(catalog["cheese"], 2)
    return cart


def main(argv):
    catalog = build_catalog()
    cart = shop(argv[0] if argv else "alice", catalog)
    print("total:", cart_total(cart, catalog, apple=0.1))
    print("summary:", summarize(cart, catalog).as_dict())
    print("cheapest:", cheapest(*catalog.values()))
    print("steps:", list(price_steps(1, 2, 0.25)))
    print("in USD:", asyncio.run(convert_all([1.0, 2.5], "USD")))
    print("missing:", cart.find("milk"), "label:", describe(catalog["cheese"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
