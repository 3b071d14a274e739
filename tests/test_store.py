"""The in-memory store: thread-safe, bounded (oldest evicted and logged), behind an interface."""

from __future__ import annotations

import logging
import threading

from support import RECORDS, new_record

from mockserver.store import MemoryStore, Store, Stores, sort


def item(n: int, **extra):
    return {"id": f"X-{n:04d}", **extra}


def test_memory_store_implements_the_interface():
    store: Store = MemoryStore("x", 10)
    store.insert(item(1))
    assert store.get("X-0001") == item(1)
    store.replace(item(1, name="a"))
    assert store.get("X-0001") == item(1, name="a")
    store.replace(item(2))  # replace never inserts
    assert store.get("X-0002") is None
    assert store.remove("X-0001") is True
    assert store.remove("X-0001") is False
    assert len(store) == 0


def test_find_filters_sorts_and_pages():
    store = MemoryStore("x", 100)
    for n in range(10):
        store.insert(item(n, group=n % 3))
    found = store.find(lambda i: i["group"] == 0, [("id", True)], 1, 2)
    assert found.total == 4
    assert [i["id"] for i in found.items] == ["X-0006", "X-0003"]


def test_sort_puts_missing_values_first_and_is_stable():
    items = [{"id": "a", "n": 2}, {"id": "b"}, {"id": "c", "n": 1}, {"id": "d", "n": 1}]
    assert [i["id"] for i in sort(items, [("n", False)])] == ["b", "c", "d", "a"]
    assert [i["id"] for i in sort(items, [("n", True), ("id", True)])] == ["a", "d", "c", "b"]


def test_oldest_items_are_evicted_at_the_bound():
    evicted = []
    store = MemoryStore("x", 3, on_evict=lambda name, old: evicted.append(old["id"]))
    for n in range(5):
        store.insert(item(n))
    assert [i["id"] for i in store] == ["X-0002", "X-0003", "X-0004"]
    assert evicted == ["X-0000", "X-0001"]


def test_concurrent_writers_lose_nothing():
    store = MemoryStore("x", 1_000_000)
    per_thread, threads = 2000, 8

    def write(t: int) -> None:
        for n in range(per_thread):
            store.insert({"id": f"{t}-{n}"})

    workers = [threading.Thread(target=write, args=(t,)) for t in range(threads)]
    readers = [threading.Thread(target=lambda: [store.find(None, [], 0, 10) for _ in range(50)])]
    for w in workers + readers:
        w.start()
    for w in workers + readers:
        w.join()
    assert len(store) == per_thread * threads


def test_stores_are_made_once_per_collection():
    stores = Stores(10)
    made = []

    def grab() -> None:
        made.append(stores["/a"])

    workers = [threading.Thread(target=grab) for _ in range(16)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert len({id(s) for s in made}) == 1


def test_max_records_evicts_the_oldest_and_says_so(make_app, caplog):
    api = make_app(max_records=3).test_client()
    with caplog.at_level(logging.INFO, logger="mockserver"):
        ids = [api.post(RECORDS, json=new_record()).json["id"] for _ in range(5)]
    listed = api.get(RECORDS).json
    assert listed["$meta"]["pagination"]["total"] == 3
    assert [r["id"] for r in listed["data"]] == ids[2:]
    assert api.get(f"{RECORDS}/{ids[0]}").status_code == 404
    evictions = [r.getMessage() for r in caplog.records if "evicted" in r.getMessage()]
    assert evictions == [
        f"store full (--max-records): evicted the oldest item {old} of {RECORDS}" for old in ids[:2]
    ]
