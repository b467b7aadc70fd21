"""Registers seed instances, then measures how late a watcher is woken at a
lease deadline while a wave of other leases is expiring."""
import concurrent.futures, json, sys, time, urllib.request

BASE = sys.argv[1]
MODE = sys.argv[2]


def call(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(BASE + path, data=data, method=method,
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req) as resp:
        return json.load(resp)


if MODE == "seed":
    def put(args):
        service, i = args
        call("PUT", f"/v1/services/{service}/instances/i{i}",
             {"address": f"http://127.0.0.1:{10000 + i % 50000}", "ttl_ms": 600000})
    jobs = [("hb", i) for i in range(1000)] + [("bulk", i) for i in range(10000)] + \
           [("small", i) for i in range(3)]
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(put, jobs))
else:
    pending = len(call("GET", "/v1/services/wave")["instances"])
    start = time.monotonic()
    call("PUT", "/v1/services/probe/instances/p",
         {"address": "http://127.0.0.1:9001", "ttl_ms": 2000})
    index = call("GET", "/v1/services/probe")["index"]
    answer = call("GET", f"/v1/services/probe?index={index}&wait=30s")
    lag = (time.monotonic() - start) * 1000 - 2000
    assert not answer["instances"], "probe should be gone"
    print(f"| watcher woken after a 2000 ms lease, {pending} other leases pending | {lag:.1f} ms late |")
