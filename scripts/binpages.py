#!/usr/bin/env python3
"""binpages.py PID BINARY: which parts of BINARY are resident in process PID.
TOP=N (environment) lists the N largest owners instead of 30.

Reads /proc/PID/pagemap (present bit only; no privileges needed) for the mappings of BINARY,
attributes each resident page to the symbols in it (go tool nm -size) and to its ELF section
(readelf -S). Used for BENCHMARKS.md "Idle RSS, part by part"."""
import sys,struct,re,collections,bisect,subprocess
pid=int(sys.argv[1]); binpath=sys.argv[2]
nmlines=subprocess.run(["go","tool","nm","-size",binpath],capture_output=True,text=True,check=True).stdout.splitlines()
maps=[]
for line in open(f'/proc/{pid}/maps'):
    p=line.split()
    if len(p)>=6 and p[5]==binpath:
        a,b=[int(x,16) for x in p[0].split('-')]; maps.append((a,b,p[1]))
present=[]
with open(f'/proc/{pid}/pagemap','rb') as f:
    for a,b,perm in maps:
        f.seek((a//4096)*8); data=f.read(((b-a)//4096)*8)
        for i in range((b-a)//4096):
            e=struct.unpack_from('<Q',data,i*8)[0]
            if e>>63: present.append(a+i*4096)
print("resident binary pages:",len(present),"=",len(present)*4//1024,"MiB")
syms=[]
for line in nmlines:
    p=line.split(None,3)
    if len(p)<4: continue
    addr=int(p[0],16); size=int(p[1]); name=p[3].strip()
    if size==0 or addr==0: continue
    syms.append((addr,size,p[2],name))
syms.sort()
addrs=[s[0] for s in syms]
def key(name,typ):
    m=re.match(r'((?:github\.com|go\.mongodb\.org|modernc\.org|google\.golang\.org|golang\.org|go\.opentelemetry\.io|go\.yaml\.in)/[^/.]+(?:/[^/.]+)?)',name)
    k=m.group(1) if m else name.split('.')[0]
    return k
by=collections.Counter(); unknown=0
for pg in present:
    i=bisect.bisect_right(addrs,pg+4095)-1
    # collect symbols overlapping page
    owners=collections.Counter()
    j=i
    while j>=0 and syms[j][0]+syms[j][1]>pg and j>i-2000:
        s=syms[j]
        ov=min(s[0]+s[1],pg+4096)-max(s[0],pg)
        if ov>0: owners[key(s[3],s[2])]+=ov
        j-=1
    if not owners: unknown+=1; continue
    tot=sum(owners.values())
    for k,v in owners.items(): by[k]+=4096*v/tot
print("pages with no symbol (pclntab, type data, strings):",unknown,"=",unknown*4//1024,"MiB")
for k,v in by.most_common(int(__import__("os").environ.get("TOP","30"))): print(f"{v/1024:8.0f} KiB  {k}")
secs=[]
for line in subprocess.run(['readelf','-SW',binpath],capture_output=True,text=True).stdout.splitlines():
    m=re.match(r'\s*\[\s*\d+\]\s+(\S+)\s+\S+\s+([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)',line)
    if m:
        n,a,sz=m.group(1),int(m.group(2),16),int(m.group(3),16)
        if a: secs.append((a,a+sz,n))
cnt=collections.Counter(); tot=collections.Counter()
for pg in present:
    for a,b,n in secs:
        if a<=pg<b or (pg<a<pg+4096): cnt[n]+=1; break
for a,b,n in secs: print(f"{n:14s} {(b-a)//1024:8d} KiB  resident {cnt[n]*4:6d} KiB")
