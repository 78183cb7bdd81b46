"""Data processing over lists, dicts, tuples and generators."""

from __future__ import annotations

import random
from collections import defaultdict


def make_rows(count, seed):
    rng = random.Random(seed)
    cities = ["Oslo", "Lima", "Pune", "Kyiv", "Perth", "Quito"]
    for index in range(count):
        yield {
            "id": index,
            "city": rng.choice(cities),
            "amount": round(rng.uniform(1, 500), 2),
            "tags": tuple(rng.sample(["a", "b", "c", "d", "e"], rng.randint(0, 3))),
        }


def parse(row):
    return (row["id"], row["city"].upper(), float(row["amount"]), list(row["tags"]))


def is_large(record):
    return record[2] > 50.0


def with_tax(record, rate=0.2):
    identifier, city, amount, tags = record
    return identifier, city, amount * (1 + rate), tags


def group_by_city(records):
    groups = defaultdict(list)
    for record in records:
        groups[record[1]].append(record)
    return groups


def summarize(city, records):
    amounts = [record[2] for record in records]
    tags = {}
    for record in records:
        for tag in record[3]:
            tags[tag] = tags.get(tag, 0) + 1
    return {"city": city, "count": len(amounts), "total": sum(amounts), "tags": tags}


def window_means(values, size):
    window = []
    for value in values:
        window.append(value)
        if len(window) > size:
            window.pop(0)
        yield sum(window) / len(window)


def sort_key(summary):
    return (-summary["total"], summary["city"])


def main():
    totals = []
    for seed in range(5):
        records = (with_tax(record) for record in map(parse, make_rows(40_000, seed)) if is_large(record))
        groups = group_by_city(records)
        summaries = sorted((summarize(city, rows) for city, rows in groups.items()), key=sort_key)
        means = list(window_means((record[2] for rows in groups.values() for record in rows[:3000]), 8))
        totals.append((summaries[0]["city"], round(sum(means), 2)))
    print(totals[:2])


if __name__ == "__main__":
    main()
