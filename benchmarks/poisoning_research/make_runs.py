import common as C, sys
seeds=list(range(10)); cal=list(range(100,120))
for r in (0.10,0.03):
    for s in seeds:
        d=C.get_run(s,r); print(f"rate {r} seed {s} acc {float(d['acc']):.3f} asr {float(d['asr']):.3f} npois {int(d['mask'].sum())} t {float(d['t_train']):.1f}",flush=True)
for s in seeds+cal:
    d=C.get_run(s,0.0); print(f"clean seed {s} acc {float(d['acc']):.3f} asr {float(d['asr']):.3f}",flush=True)
