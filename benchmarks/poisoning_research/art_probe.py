import common as C, numpy as np, torch
from art.estimators.classification import PyTorchClassifier
m=C.load_model(0,0.10)
clf=PyTorchClassifier(model=m,loss=torch.nn.CrossEntropyLoss(),input_shape=(1,8,8),nb_classes=10,clip_values=(0,1))
print(clf.layer_names)
d=C.get_run(0,0.10)
a=clf.get_activations(d['x'][:5],layer=len(clf.layer_names)-1); print(a.shape)
print(np.allclose(a,d['logits'][:5],atol=1e-4), np.allclose(a,d['penult'][:5],atol=1e-4))
