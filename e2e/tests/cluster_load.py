"""Load through every router pod of a cluster: producers send to several pull agents through any pod,
each agent's consumer pulls and acks through any pod, and every send, delivery and refusal is recorded,
so a test can say whether an acknowledged message was lost, delivered twice after a confirmed ack, or
delivered out of its conversation's order.

A producer owns one conversation per agent and sends its messages in sequence: message n+1 only after
message n was acknowledged (202), so the order a conversation must keep is the order of its
acknowledgements. A send that gets no answer or a 5xx is retried with the same message id on the
producer's next round, through any pod; the router's dedup makes that safe. The pods to use are `urls`, which the test updates as
pods come and go.
"""
import json
import random
import threading
import time
import urllib.error
import urllib.request


def call(method, url, body=None, timeout=3):
    """(status, headers, body); status None when the pod could not be reached."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()
    except (OSError, urllib.error.URLError):
        return None, {}, b""


class ClusterLoad:
    def __init__(self, urls, agents, producers=3, late=()):
        """`late`: agents whose consumers start only at release_late(): their queues fill up (to the
        agent's capacity; further sends get 429 and are retried) so there is a backlog to move."""
        self.urls = list(urls)
        self.agents = list(agents) + list(late)
        self.late, self.late_go = set(late), threading.Event()
        self.stop_sending, self.stop_all = threading.Event(), threading.Event()
        self.lock = threading.Lock()
        self.acked = {}            # message id -> (conversation, seq)
        self.via = {}              # message id -> (time, pod url) of its acknowledgement
        self.ack_time = {}         # agent -> times of its acknowledgements
        self.refusals = []         # (time, agent, status, has Retry-After) of every 5xx
        self.delivered = []        # (agent, message id) in delivery order, per consumer
        self.confirmed = set()
        self.answers, self.samples = {}, []  # sends by status; a few refusals with their bodies
        self.failed_pulls = []     # (time, agent, pod url, status) of every pull that was not a 200
        self.redelivered_after_confirm = []
        self.threads = [threading.Thread(target=self.produce, args=(i,), daemon=True) for i in range(producers)]
        self.threads += [threading.Thread(target=self.consume, args=(a,), daemon=True) for a in self.agents]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def pick(self):
        with self.lock:
            return random.choice(self.urls)

    def release_late(self):
        self.late_go.set()

    def send_one(self, i, agent, seq):
        """One attempt: "ok" when the message was acknowledged, "full" on a 429, else "failed"."""
        mid = f"p{i}-{agent}-{seq}"
        body = {"performative": "inform", "sender": f"producer-{i}", "receiver": agent, "content": str(seq),
                "message_id": mid, "conversation_id": f"p{i}-{agent}"}
        url = self.pick()
        s, h, reply = call("POST", f"{url}/v1/messages", body)
        with self.lock:
            self.answers[s] = self.answers.get(s, 0) + 1
            if s not in (200, 202, 429) and len(self.samples) < 20:
                self.samples.append((s, agent, url, reply[:300]))
            if s in (200, 202):
                self.acked[mid] = (f"p{i}-{agent}", seq)
                self.via[mid] = (time.time(), url)
                self.ack_time.setdefault(agent, []).append(time.time())
                return "ok"
            if s == 429:
                return "full"
            if s is not None and s >= 500:
                self.refusals.append((time.time(), agent, s, "Retry-After" in h))
        return "failed"

    def produce(self, i):
        """Round-robin over the agents; a conversation whose message was refused retries it (same id) on
        the next round, so one unavailable agent never holds up the others."""
        seq = {a: 0 for a in self.agents}
        while not self.stop_sending.is_set():
            failed = 0
            for agent in self.agents:
                r = self.send_one(i, agent, seq[agent])
                if r == "ok":
                    seq[agent] += 1
                failed += r == "failed"
            time.sleep(0.05 if failed else 0.01)

    def consume(self, agent):
        if agent in self.late:
            while not self.late_go.wait(0.2) and not self.stop_all.is_set():
                pass
        while not self.stop_all.is_set():
            base = self.pick()
            s, _, body = call("GET", f"{base}/v1/agents/{agent}/messages?max=100&wait_ms=500")
            if s != 200:
                with self.lock:
                    self.failed_pulls.append((time.time(), agent, base, s))
                time.sleep(0.05)
                continue
            got = [m["message_id"] for m in json.loads(body)["messages"]]
            with self.lock:
                self.redelivered_after_confirm += [m for m in got if m in self.confirmed]
                self.delivered += [(agent, m) for m in got]
            if not got:
                continue
            s, _, body = call("POST", f"{self.pick()}/v1/agents/{agent}/ack", {"message_ids": got})
            if s == 200 and not json.loads(body).get("not_leased"):
                with self.lock:
                    self.confirmed.update(got)

    def finish(self, timeout=90):
        """Stop sending, wait until every acknowledged message was delivered (or `timeout`), stop."""
        self.stop_sending.set()
        self.late_go.set()
        for t in self.threads[:-len(self.agents)]:
            t.join(30)
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                if set(self.acked) <= {m for _, m in self.delivered}:
                    break
            time.sleep(0.2)
        self.stop_all.set()
        for t in self.threads:
            t.join(10)

    def lost(self):
        return set(self.acked) - {m for _, m in self.delivered}

    def out_of_order(self):
        """Conversations whose first deliveries do not follow their sequence numbers."""
        last, bad = {}, []
        seen = set()
        for _, mid in self.delivered:
            if mid in seen or mid not in self.acked:
                continue
            seen.add(mid)
            conv, seq = self.acked[mid]
            if seq < last.get(conv, -1):
                bad.append((conv, last[conv], seq))
            last[conv] = max(seq, last.get(conv, -1))
        return bad

    def duplicates(self):
        ids = [m for _, m in self.delivered]
        return len(ids) - len(set(ids))
