€
"serve*2.15.02	v2.15.0-0Ð

xPlaceholder*
dtype0

w
VariableV2*
dtype0

w/readIdentityw

MatMulMatMulxw/read

vocabHashTableV2
"
asset_path_0Const*
dtype0
@

vocab/initInitializeTableFromTextFileV2vocabasset_path_0
'
save/filenamePlaceholderWithDefault
$

save/ConstPlaceholderWithDefault
!
save/SaveV2SaveV2
save/Const

	save/SaveSave
save/Const
/
save/control_dependencyIdentity
save/Const
'
save/RestoreV2	RestoreV2
save/Const
-
save/RestoreSliceRestoreSlice
save/Const
(
save/AssignAssignwsave/RestoreV2

save/restore_allNoOp"í?
save/Const:0save/control_dependency:0save/restore_all 8*/
serving_defaulttensorflow/serving/predict2

asset_path_0:0	vocab.txt