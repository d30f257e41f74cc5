#!/usr/bin/env python3
"""Share of a Winch cold load's samples by compiler (docs/benchmarks.md, "The fourteenth round").

    timeout -s INT 4.5 perf record -F 499 --call-graph dwarf,32768 -o lstm.data \
        target/release/trademl-bench --in-process-only --model demand-forecast-lstm \
        --loads 1 --requests 100 --json /tmp/x.json
    perf script -i lstm.data --no-inline -F comm,time,ip,sym | python3 winch-compile-share.py

The window runs from the first to the last sample in Winch's code generator, on the
bench's own threads (the background Cranelift compile runs on threads of another name).
A sample is "winch" when its stack passes through winch_codegen, "trampolines" when it
passes through compile_trampoline or Cranelift's single-pass allocator, and
"cranelift-speed(other)" when it is Cranelift's optimiser or backtracking allocator
with a stack cut short before its caller.
"""
import sys,collections
c=collections.Counter(); cur=None; frames=[]; n=0; first={}
rows=[]
def flush():
    if cur is None: return
    comm,t=cur
    if not comm.startswith(('trademl-bench', 'bench-')): return
    j=' '.join(frames)
    if 'winch_codegen' in j: k='winch'
    elif 'compile_trampoline' in j or 'fastalloc' in j: k='trampolines'
    elif 'Context::optimize' in j or 'regalloc2::ion::run' in j: k='cranelift-speed(other)'
    else: k='other'
    rows.append((float(t),k))
for line in sys.stdin:
    if not line.strip():
        flush(); cur=None; frames=[]; continue
    if not line.startswith((' ','\t')):
        p=line.split(); cur=(p[0],p[1].rstrip(':')); frames=[]
    else:
        s=line.strip().split(' ',1); frames.append(s[1] if len(s)>1 else s[0])
flush()
# window: from first winch sample to last winch sample
w=[t for t,k in rows if k=='winch']; a,b=min(w),max(w)
for t,k in rows:
    if a<=t<=b: c[k]+=1
tot=sum(c.values()); print('window %.2f s, %d samples'%(b-a,tot))
for k,v in c.most_common(): print('%5.1f%% %s'%(100*v/tot,k))
