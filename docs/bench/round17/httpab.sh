#!/bin/bash
# usage: httpab.sh BIN MODEL BODY
# Run from the repository root, after `cargo build --release -p trademl` and with oha in target/bench-tools (scripts/bench installs it).
BIN=$1; M=$2; D=$3; O=target/bench-tools/bin/oha
$BIN serve --models models --listen 127.0.0.1:18081 > /tmp/srv-ab.log 2>&1 &
SP=$!
for i in $(seq 50); do curl -sf localhost:18081/v2/health/ready >/dev/null && break; sleep 0.2; done
sleep 1
for c in 1 8 64; do
  a=$(awk '{print $14+$15}' /proc/$SP/stat)
  $O -z 3s -c $c --no-tui --output-format json -m POST -H 'content-type: application/json' -D $D http://127.0.0.1:18081/v2/models/$M/infer > /tmp/o-ab.json
  b=$(awk '{print $14+$15}' /proc/$SP/stat)
  python3 -c "
import json;d=json.load(open('/tmp/o-ab.json'));n=sum(d['statusCodeDistribution'].values());l=d['latencyPercentiles']
print('$(basename $BIN) $M c=$c', round(d['summary']['requestsPerSec']),'req/s p50',round(l['p50']*1e6),'p99',round(l['p99']*1e6),'us; server CPU/req',round(($b-$a)*10000/n,1),'us', d['statusCodeDistribution'])"
done
kill $SP; wait $SP 2>/dev/null
