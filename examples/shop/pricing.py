"""Prices, discounts and checkout."""

import asyncio

from shop.models import Cart, Item


def line_total(price, quantity, /, *, discount=None):
    if discount is None:
        return price * quantity
    return round(price * quantity * (1 - discount), 2)


def cart_total(cart, catalog, **discounts):
    total = 0.0
    for name, quantity in cart.items():
        total += line_total(catalog[name].price, quantity, discount=discounts.get(name))
    return total


def cheapest(*items):
    return min(items, key=lambda item: item.price)


def price_steps(start, stop, step):
    value = start
    while value < stop:
        yield value
        value += step


async def fetch_rate(currency):
    await asyncio.sleep(0)
    return {"EUR": 1.0, "USD": 1.08}.get(currency)


async def convert_all(amounts, currency):
    rate = await fetch_rate(currency)
    return [amount * rate for amount in amounts]


def summarize(cart, catalog):
    count = sum(quantity for _, quantity in cart.items())
    return Cart.Summary(count, cart_total(cart, catalog))


def catalog_of(items):
    return {item.name: item for item in items}


def describe(item: Item) -> str:
    return item.label
