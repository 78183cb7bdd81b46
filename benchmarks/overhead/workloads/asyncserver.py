"""Server-like asyncio workload: clients send requests through queues to handler tasks."""

from __future__ import annotations

import asyncio
import json


class Request:
    def __init__(self, client, path, body):
        self.client = client
        self.path = path
        self.body = body


def route(path):
    if path.startswith("/items/"):
        return handle_item
    if path == "/sum":
        return handle_sum
    return handle_missing


async def handle_item(request):
    item_id = int(request.path.rsplit("/", 1)[1])
    return {"id": item_id, "name": f"item-{item_id}", "price": item_id * 1.5}


async def handle_sum(request):
    values = json.loads(request.body)
    await asyncio.sleep(0)
    return {"sum": sum(values)}


async def handle_missing(request):
    return {"error": "not found", "path": request.path}


def encode(response):
    return json.dumps(response).encode()


async def server(queue, replies):
    while True:
        request = await queue.get()
        if request is None:
            break
        handler = route(request.path)
        replies[request.client].put_nowait(encode(await handler(request)))


async def client(number, queue, reply_queue, count):
    received = 0
    for index in range(count):
        if index % 3 == 0:
            request = Request(number, f"/items/{index}", b"")
        elif index % 3 == 1:
            request = Request(number, "/sum", json.dumps([index, number, 3]).encode())
        else:
            request = Request(number, "/nowhere", b"")
        await queue.put(request)
        received += len(await reply_queue.get())
    return received


async def serve(clients, requests_per_client):
    queue = asyncio.Queue()
    replies = [asyncio.Queue() for _ in range(clients)]
    servers = [asyncio.create_task(server(queue, replies)) for _ in range(4)]
    sizes = await asyncio.gather(*(client(n, queue, replies[n], requests_per_client) for n in range(clients)))
    for _ in servers:
        await queue.put(None)
    await asyncio.gather(*servers)
    return sum(sizes)


def main():
    print("bytes", asyncio.run(serve(50, 2_400)))


if __name__ == "__main__":
    main()
