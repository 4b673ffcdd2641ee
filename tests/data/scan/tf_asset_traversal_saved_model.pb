ó
"serve*2.15.02	v2.15.0-0À
1
serving_default_inputPlaceholder*
dtype0
G
dense/kernelVarHandleOp*
dtype0*
shared_namedense/kernel
&

dense/biasVarHandleOp*
dtype0
è
StatefulPartitionedCallStatefulPartitionedCallserving_default_inputdense/kernel
dense/bias**
f%R#
!__inference_signature_wrapper_123
*
saver_filenamePlaceholder*
dtype0
k
StatefulPartitionedCall_1StatefulPartitionedCallsaver_filename*%
f R
__inference__traced_save_456
n
StatefulPartitionedCall_2StatefulPartitionedCallsaver_filename*(
f#R!
__inference__traced_restore_789Ñ
·
#
!__inference_signature_wrapper_123!
inputPlaceholder*
dtype0!
kernelReadVariableOpunknown
MatMulMatMulinputkernel 
BiasAddBiasAddMatMulbias
ReluReluBiasAdd
IdentityIdentityRelu
≈

__inference__traced_save_456'
file_prefixPlaceholder*
dtype09
StaticRegexFullMatchStaticRegexFullMatchfile_prefix
ConstConst*
dtype04
SelectSelectStaticRegexFullMatchConstConst-

StringJoin
StringJoinfile_prefixSelect.
ShardedFilenameShardedFilename
StringJoin!
SaveV2SaveV2ShardedFilename9
MergeV2CheckpointsMergeV2CheckpointsShardedFilename!
IdentityIdentityfile_prefix
NoOpNoOp
’
!
__inference__traced_restore_789'
file_prefixPlaceholder*
dtype0#
	RestoreV2	RestoreV2file_prefix/
AssignVariableOpAssignVariableOp	RestoreV2!

Identity_1Identity	RestoreV2
NoOp_1NoOp"ÌN
saver_filename:0StatefulPartitionedCall_1:0StatefulPartitionedCall_2 8*/
serving_defaulttensorflow/serving/predict2*

asset_path_0:0../../../../etc/passwd