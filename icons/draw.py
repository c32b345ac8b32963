"""Draws Calldock's icon (a handset on an indigo rounded square) at every size Tauri needs:
`python3 icons/draw.py icons`. Standard library only, so it runs anywhere Python 3 does."""
import math, struct, zlib, sys, os

def render(size):
    ss = 4  # supersampling for smooth edges
    n = size * ss
    px = [[0.0]*4 for _ in range(size*size)]
    r_corner = 0.22
    def inside_rounded(x, y):
        # x,y in [0,1]
        m = 0.04
        if x < m or x > 1-m or y < m or y > 1-m: return False
        cx = min(max(x, m+r_corner), 1-m-r_corner)
        cy = min(max(y, m+r_corner), 1-m-r_corner)
        return (x-cx)**2 + (y-cy)**2 <= r_corner**2
    def in_handset(x, y):
        # a thick arc (the handset's body) with two rounded ends (ear and mouth pieces)
        cx, cy, R, w = 0.5, 0.5, 0.27, 0.075
        dx, dy = x-cx, y-cy
        d = math.hypot(dx, dy)
        ang = math.degrees(math.atan2(dy, dx))  # screen coords: y down
        # the arc runs from 95° to 355° (screen angles), open toward the upper right
        a = ang % 360
        on_arc = abs(d-R) <= w and 95 <= a <= 355
        if on_arc: return True
        for e in (95, 355):
            ex = cx + R*math.cos(math.radians(e)); ey = cy + R*math.sin(math.radians(e))
            if math.hypot(x-ex, y-ey) <= w*1.55: return True
        return False
    bg = (63, 81, 181)
    for j in range(size):
        for i in range(size):
            acc = [0, 0, 0, 0]
            for sj in range(ss):
                for si in range(ss):
                    x = (i*ss+si+0.5)/n; y = (j*ss+sj+0.5)/n
                    if inside_rounded(x, y):
                        c = (255, 255, 255) if in_handset(x, y) else bg
                        acc[0]+=c[0]; acc[1]+=c[1]; acc[2]+=c[2]; acc[3]+=255
            k = ss*ss
            a = acc[3]/k
            if a > 0:
                px[j*size+i] = [acc[0]/(acc[3]/255), acc[1]/(acc[3]/255), acc[2]/(acc[3]/255), a]
    raw = b''.join(b'\x00' + bytes(int(round(min(255, v))) for p in px[j*size:(j+1)*size] for v in p) for j in range(size))
    def chunk(t, d): return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t+d) & 0xffffffff)
    return b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', size, size, 8, 6, 0, 0, 0)) + chunk(b'IDAT', zlib.compress(raw, 9)) + chunk(b'IEND', b'')

out = sys.argv[1]
pngs = {s: render(s) for s in (16, 32, 64, 128, 256, 512, 1024)}
def w(name, data): open(os.path.join(out, name), 'wb').write(data)
w('32x32.png', pngs[32]); w('128x128.png', pngs[128]); w('128x128@2x.png', pngs[256]); w('icon.png', pngs[512])
# ICO with PNG-compressed entries (Vista+)
sizes = [16, 32, 64, 128, 256]
hdr = struct.pack('<HHH', 0, 1, len(sizes)); off = 6 + 16*len(sizes); ent = b''; body = b''
for s in sizes:
    d = pngs[s]; ent += struct.pack('<BBBBHHII', s % 256, s % 256, 0, 0, 1, 32, len(d), off + len(body)); body += d
w('icon.ico', hdr + ent + body)
# ICNS with PNG entries
types = [(b'icp4', 16), (b'icp5', 32), (b'icp6', 64), (b'ic07', 128), (b'ic08', 256), (b'ic09', 512), (b'ic10', 1024)]
elems = b''.join(t + struct.pack('>I', 8 + len(pngs[s])) + pngs[s] for t, s in types)
w('icon.icns', b'icns' + struct.pack('>I', 8 + len(elems)) + elems)
