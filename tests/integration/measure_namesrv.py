# Measures `apogee namesrv` cold start (exec -> first accepted TCP connect on 127.0.0.1)
# and idle RSS (VmRSS 1 s after start). Usage: python3 tests/integration/measure_namesrv.py build/apogee [runs]
import socket, subprocess, sys, time, tempfile, shutil, statistics, os
binp = sys.argv[1]; runs = int(sys.argv[2]) if len(sys.argv) > 2 else 20
def free_port():
    s = socket.socket(); s.bind(('127.0.0.1', 0)); p = s.getsockname()[1]; s.close(); return p
times = []; rss = []
for i in range(runs):
    d = tempfile.mkdtemp(); port = free_port()
    t0 = time.perf_counter()
    p = subprocess.Popen([binp, 'namesrv', f'--listenPort={port}', '--bindAddress=127.0.0.1', f'--storePathRootDir={d}'],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:
        try:
            socket.create_connection(('127.0.0.1', port), timeout=1).close(); break
        except OSError:
            time.sleep(0.0002)
    times.append((time.perf_counter() - t0) * 1000)
    time.sleep(1.0)
    with open(f'/proc/{p.pid}/status') as f:
        for l in f:
            if l.startswith('VmRSS'): rss.append(int(l.split()[1]))
    p.terminate(); p.wait(); shutil.rmtree(d)
print(sorted(round(t,1) for t in times)); print(f'cold start to listening (exec -> first accepted connect), {runs} runs: median {statistics.median(times):.2f} ms, max {max(times):.2f} ms')
print(f'idle RSS after 1 s: median {statistics.median(rss)} kB, max {max(rss)} kB')
