import common as C, torch, time, numpy as np
split,mask=C.poisoned_split(0,0.10)
t=time.perf_counter(); m1=C.train_cnn(split,seed=0); t1=time.perf_counter()-t
t=time.perf_counter(); m2,_=C.train_with_trace(split,0); t2=time.perf_counter()-t
same=all(torch.equal(a,b) for a,b in zip(m1.state_dict().values(),m2.state_dict().values()))
print("identical weights:",same,"train_cnn %.1fs trace %.1fs"%(t1,t2))
