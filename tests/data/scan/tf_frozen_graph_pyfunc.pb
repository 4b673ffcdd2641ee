

xPlaceholder*
dtype0
-
pyPyFuncStatelessx*
token
pyfunc_1"í