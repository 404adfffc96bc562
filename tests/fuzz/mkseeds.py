"""Regenerate the committed seed corpus under tests/fuzz/corpus/ from the samples
(config/, config/samples/, tests/unit/golden/) and a few hand-written inputs,
one realistic input per shape each target frames.  Run from the repository root:
    python3 tests/fuzz/mkseeds.py
Every seed must pass its target: `make fuzz-regress` replays them."""
import json, gzip, base64, yaml, os, glob
C='tests/fuzz/corpus/'
def w(t, name, data):
    if isinstance(data, str): data = data.encode()
    open(os.path.join(C, t, name), 'wb').write(data)

# --- fuzz_msg: [framing: 0 single, 1 batch, 2 ndjson][maxMessageBytes selector] body
m1 = {"performative":"request","sender":"alice","receiver":"bob","conversation_id":"trip-42",
      "content":"Book a table for two","delivery":{"priority":"high","timeout_ms":5000,"max_retries":3},
      "traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","tracestate":"vendor=abc,other=1"}
m2 = {"performative":"inform","sender":"alice","receiver":"bob","content":"one"}
m3 = {"performative":"query-if","sender":"a.b_c-1","receiver":"bob","content_base64":"aGVsbG8=",
      "message_id":"m-1:2","created_at":"2024-05-01T12:00:00.123Z","language":"en","ontology":"travel",
      "protocol":"fipa-request","reply_with":"r1","in_reply_to":"r0"}
w('fuzz_msg','single', b'\x00\x02' + json.dumps(m1).encode())
w('fuzz_msg','single-b64', b'\x00\x02' + json.dumps(m3).encode())
w('fuzz_msg','batch', b'\x01\x02' + json.dumps({"messages":[m2, m1, {"performative":"bogus"}]}, separators=(',',':')).encode())
w('fuzz_msg','ndjson', b'\x02\x01' + (json.dumps(m2)+'\n'+json.dumps(m3)+'\r\n\n{"sender":1}\n').encode())
w('fuzz_msg','too-large', b'\x00\x00' + json.dumps(m2 | {"content":"x"*40}).encode())
w('fuzz_msg','unknown-field', b'\x00\x01' + b'{"performative":"inform","sender":"alice","receiver":"bob","colour":"red"}')
w('fuzz_msg','duplicate', b'\x00\x01' + b'{"performative":"inform","sender":"alice","sender":"bob","receiver":"bob"}')
w('fuzz_msg','not-json', b'\x00\x01' + b'{"performative":"inform",')

# --- fuzz_cfg: document [NUL overlay lines]
for f in glob.glob('config/*.yaml'):
    w('fuzz_cfg', os.path.basename(f), open(f,'rb').read())
dev = yaml.safe_load(open('config/router.development.yaml'))
w('fuzz_cfg','development.json', json.dumps(dev))
w('fuzz_cfg','overlay', open('config/router.production.yaml','rb').read() + b'\0network.dataPort=9090\nstorage.sync=normal\nstorage.path=\ncluster.ordinal=1')
w('fuzz_cfg','gzip', gzip.compress(json.dumps(dev).encode(), mtime=0))
w('fuzz_cfg','agents', b'profile: highThroughput\nagents:\n  - {id: a, mode: pull}\n  - id: b\n    mode: push\n    endpoint: http://b:80/in\n    rateLimit: {messagesPerSecond: 2.5, burst: 5}\n    capabilities: [{name: x, description: y}]\n  - {id: c, mode: push, endpoint: http://c:9999/, protocol: a2a}\n')
w('fuzz_cfg','bad-range', b'performance: {workerThreads: -1, batchSize: 100000}\ndelivery: {retryBackoffFactor: .nan}\n')

# --- fuzz_kubeconfig
ca = base64.b64encode(b'-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n').decode()
kc = {"apiVersion":"v1","kind":"Config","current-context":"ctx",
      "clusters":[{"name":"c1","cluster":{"server":"https://127.0.0.1:6443/base","certificate-authority-data":ca}}],
      "contexts":[{"name":"ctx","context":{"cluster":"c1","user":"u1","namespace":"demo"}}],
      "users":[{"name":"u1","user":{"token":"abc.def"}}]}
w('fuzz_kubeconfig','token.yaml', yaml.safe_dump(kc))
kc2 = json.loads(json.dumps(kc))
kc2["clusters"][0]["cluster"] = {"server":"https://[::1]:6443","certificate-authority":"ca.crt"}
kc2["users"][0]["user"] = {"client-certificate":"client.crt","client-key":"client.key"}
w('fuzz_kubeconfig','files.yaml', yaml.safe_dump(kc2))
kc3 = json.loads(json.dumps(kc)); kc3["users"][0]["user"] = {"client-certificate-data":ca, "tokenFile":"tok"}
w('fuzz_kubeconfig','cert-no-key.json', json.dumps(kc3))
kc4 = json.loads(json.dumps(kc)); kc4["clusters"][0]["cluster"]["insecure-skip-tls-verify"] = True
w('fuzz_kubeconfig','insecure.yaml', yaml.safe_dump(kc4))

# --- fuzz_watch: [bound selector] then (len byte, chunk)*
def chunks(stream, sizes):
    out, i, k = b'', 0, 0
    while i < len(stream):
        n = min(sizes[k % len(sizes)], len(stream)-i); out += bytes([n]) + stream[i:i+n]; i += n; k += 1
    return out
ev = lambda t, ns, name, rv: json.dumps({"type":t,"object":{"kind":"Agent","metadata":{"namespace":ns,"name":name,"resourceVersion":rv}}}).encode()
s = ev("ADDED","demo","planner","1") + b'\n' + ev("MODIFIED","demo","planner","2") + b'\n\n' + ev("DELETED","demo","planner","3") + b'\n' + b'{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"9"}}}\n'
w('fuzz_watch','events', b'\x02' + chunks(s, [200, 7, 1, 64]))
w('fuzz_watch','long-line', b'\x01' + chunks(s, [255]))
w('fuzz_watch','stop', b'\x02' + chunks(b'a\nSTOP\nb\n', [3]))
w('fuzz_watch','error', b'\x02' + chunks(b'{"type":"ERROR","object":{"kind":"Status","code":410}}\npartial', [5, 11]))

# --- fuzz_configmap: [mode] payload
doc = json.dumps({"agents":[{"id":"a","mode":"pull"}],"profile":"development"}, separators=(',',':'), sort_keys=True).encode()
w('fuzz_configmap','gzip', b'\x00' + gzip.compress(doc, mtime=0))
w('fuzz_configmap','gzip-trailing', b'\x00' + gzip.compress(doc, mtime=0) + b'junk')
w('fuzz_configmap','cm-plain', b'\x01' + open('tests/unit/golden/configmap.json','rb').read())
w('fuzz_configmap','cm-binary', b'\x01' + json.dumps({"binaryData":{"router.json":base64.b64encode(gzip.compress(doc, mtime=0)).decode()}}).encode())
w('fuzz_configmap','roundtrip', b'\x02' + doc)
w('fuzz_configmap','roundtrip-big', b'\x06' + doc)
w('fuzz_configmap','yaml-prod', b'\x03' + open('config/router.production.yaml','rb').read())
w('fuzz_configmap','yaml-scalars', b'\x03' + b'a: "yes"\nb: null\nc: ~\nd: 1.0\ne: -0\nf: "0x1F"\ng: [1, "2", true]\n"h i": {j: ""}\nk: |\n  two\n  lines\n')
w('fuzz_configmap','json-span', b'\x03' + b'  {"a":[1,{"b":"c\\"}"}]} tail')

# --- fuzz_render: RouterConfig JSON [NUL agents array]
def loadall(f): return list(yaml.safe_load_all(open(f)))
rcdev = loadall('config/samples/routerconfig-development.yaml')[0]; rcdev["metadata"]["namespace"] = "demo"
rcprod = loadall('config/samples/routerconfig-production.yaml')[0]; rcprod["metadata"]["namespace"] = "demo"
ags = [loadall(f)[0] for f in sorted(glob.glob('config/samples/agent-*.yaml'))]
for a in ags: a["metadata"]["namespace"] = "demo"
w('fuzz_render','dev', json.dumps(rcdev).encode() + b'\0' + json.dumps(ags).encode())
pa = json.loads(json.dumps(ags))
for a in pa: a["spec"]["routerRef"]["name"] = "prod"; a["metadata"]["labels"] = {"switchboard.dev/router":"prod"}
pa.append({"metadata":{"name":"dup","namespace":"demo","labels":{"switchboard.dev/router":"prod"}},"spec":{"routerRef":{"name":"prod"},"agentId":"planner"}})
w('fuzz_render','prod', json.dumps(rcprod).encode() + b'\0' + json.dumps(pa).encode())
w('fuzz_render','no-agents', json.dumps(rcdev).encode())
bad = json.loads(json.dumps(rcdev)); bad["spec"]["router"]["performance"] = {"batchSize": 1000000}
w('fuzz_render','invalid', json.dumps(bad).encode())

# --- fuzz_metrics: NUL-separated label values
w('fuzz_metrics','plain', b'alice\0bob\0Timeout')
w('fuzz_metrics','escapes', b'a"b\0c\\d\0e\nf\0\r\n\0' + 'ünïcode'.encode())
w('fuzz_metrics','empty', b'')

# --- fuzz_a2a: [A2A-Version header value] NUL body (or just a body)
def rpc(method, params, id=1):
    return json.dumps({"jsonrpc": "2.0", "id": id, "method": method, "params": params}, separators=(',', ':')).encode()
w('fuzz_a2a','send-1.0', b'1.0\0' + rpc("SendMessage", {"message": {"messageId": "m1", "contextId": "c1", "role": "ROLE_USER",
    "parts": [{"text": "hello"}], "metadata": {"sender": "alice", "performative": "inform"}}, "configuration": {}}))
w('fuzz_a2a','send-parts', rpc("SendMessage", {"message": {"messageId": "m2", "parts": [{"data": {"k": [1, 2]}},
    {"url": "http://127.0.0.1/f", "mediaType": "text/plain", "filename": "f"}, {"raw": "aGk="}]}}, "s"))
w('fuzz_a2a','send-0.3', b'0.3\0' + rpc("message/send", {"message": {"kind": "message", "messageId": "m3", "role": "user",
    "parts": [{"kind": "text", "text": "hi"}, {"kind": "file", "file": {"uri": "http://127.0.0.1/g", "name": "g"}},
              {"kind": "data", "data": {"a": None}}]}}))
w('fuzz_a2a','get', rpc("GetTask", {"id": "m1", "historyLength": 2}))
w('fuzz_a2a','cancel-0.3', rpc("tasks/cancel", {"id": "m1"}, "x"))
w('fuzz_a2a','push-config', rpc("SendMessage", {"message": {"messageId": "m4", "parts": [{"text": "x"}]},
    "configuration": {"taskPushNotificationConfig": {"url": "http://127.0.0.1/"}}}))
w('fuzz_a2a','unknown-method', b'9.9\0' + rpc("tasks/list", {}))
w('fuzz_a2a','batch', b'[' + rpc("GetTask", {"id": "a"}) + b']')
