package api

import (
	"reflect"
	"slices"
)

// Reading Calico manifests.
//
// A projectcalico.org/v3 document of a kind Calyx has is decoded into the
// Calyx type of the same name: the field names are Calico's already. What
// Calyx cannot honour is an error, never silently dropped, because a
// dropped security or routing setting would make the cluster behave
// differently from what the manifest says. The tables below only improve
// the message for fields Calico has and Calyx does not ("... not supported
// by Calyx" rather than "unknown field"); any other unknown field is an
// error too.
//
// Three things are converted rather than refused:
//   - kind FelixConfiguration (with either apiVersion) is read as
//     NodeConfiguration; the Felix settings Calyx honours have the same
//     names in NodeConfigurationSpec.
//   - A v3 WorkloadEndpoint's metadata.namespace is dropped when it is
//     exactly "default", the namespace Calico gives every non-Kubernetes
//     endpoint; any other namespace is an error, as Calyx resources are
//     global.
//   - A v3 document's status is dropped: it is state Calico observed, not
//     configuration, and Calyx reports node status from the agent.
//
// Calico list documents ("kind: IPPoolList", as printed by calicoctl get -o
// yaml) are read like "kind: List".

// felixFieldsUnsupported are FelixConfiguration settings Calyx does not
// have: iptables, BPF, IPIP, WireGuard and other dataplane features it does
// not implement, or tunables of Felix's internals.
var felixFieldsUnsupported = []string{
	"allowIPIPPacketsFromWorkloads", "allowVXLANPacketsFromWorkloads", "awsSrcDstCheck",
	"bpfAttachType", "bpfCTLBLogFilter", "bpfConnectTimeLoadBalancing", "bpfConnectTimeLoadBalancingEnabled",
	"bpfConntrackLogLevel", "bpfConntrackMode", "bpfConntrackTimeouts", "bpfDSROptoutCIDRs",
	"bpfDataIfacePattern", "bpfDisableGROForIfaces", "bpfDisableUnprivileged", "bpfEnabled",
	"bpfEnforceRPF", "bpfExcludeCIDRsFromNAT", "bpfExportBufferSizeMB", "bpfExtToServiceConnmark",
	"bpfExternalServiceMode", "bpfForceTrackPacketsFromIfaces", "bpfHostConntrackBypass",
	"bpfHostNetworkedNATWithoutCTLB", "bpfKubeProxyEndpointSlicesEnabled", "bpfKubeProxyIptablesCleanupEnabled",
	"bpfKubeProxyMinSyncPeriod", "bpfL3IfacePattern", "bpfLogFilters", "bpfLogLevel",
	"bpfMapSizeConntrack", "bpfMapSizeIPSets", "bpfMapSizeIfState", "bpfMapSizeNATAffinity",
	"bpfMapSizeNATBackend", "bpfMapSizeNATFrontend", "bpfMapSizePerCpuConntrack", "bpfMapSizeRoute",
	"bpfPSNATPorts", "bpfPolicyDebugEnabled", "bpfProfiling", "bpfRedirectToPeer",
	"cgroupV2Path", "chainInsertMode", "dataplaneDriver", "dataplaneWatchdogTimeout",
	"debugDisableLogDropping", "debugHost", "debugMemoryProfilePath", "debugPort",
	"debugSimulateCalcGraphHangAfter", "debugSimulateDataplaneApplyDelay", "debugSimulateDataplaneHangAfter",
	"defaultEndpointToHostActionV6", "deviceRouteProtocol", "deviceRouteSourceAddress", "deviceRouteSourceAddressIPv6",
	"disableConntrackInvalidCheck", "endpointReportingDelay", "endpointReportingEnabled", "endpointStatusPathPrefix",
	"externalNodesList", "featureDetectOverride", "featureGates", "floatingIPs",
	"flowLogsCollectorDebugTrace", "flowLogsFlushInterval", "flowLogsGoldmaneServer", "flowLogsLocalReporter",
	"flowLogsPolicyEvaluationMode", "genericXDPEnabled", "goGCThreshold", "goMaxProcs", "goMemoryLimitMB",
	"healthHost", "healthTimeoutOverrides", "interfaceExclude", "interfaceRefreshInterval",
	"ipForwarding", "ipipEnabled", "ipipMTU", "ipsetsRefreshInterval", "iptablesBackend",
	"iptablesFilterAllowAction", "iptablesFilterDenyAction", "iptablesLockFilePath", "iptablesLockProbeInterval",
	"iptablesLockTimeout", "iptablesMangleAllowAction", "iptablesMarkMask", "iptablesNATOutgoingInterfaceFilter",
	"iptablesPostWriteCheckInterval", "iptablesRefreshInterval", "ipv4ElasticIPsRoutingRulePriority",
	"ipv6ElasticIPsRoutingRulePriority", "istioAmbientMode", "istioDSCPMark", "kubeNodePortRanges",
	"liveMigrationRouteConvergenceTime", "logActionRateLimit", "logActionRateLimitBurst", "logDebugFilenameRegex",
	"logFilePath", "logPrefix", "logSeverityFile", "logSeveritySys", "maxIpsetSize",
	"metadataAddr", "metadataPort", "mtuIfacePattern", "natOutgoingAddress", "natOutgoingExclusions",
	"natPortRange", "netlinkTimeout", "nfNetlinkBufSize", "nftablesFilterAllowAction",
	"nftablesFilterDenyAction", "nftablesMangleAllowAction", "nftablesMarkMask", "nftablesMode",
	"openstackRegion", "policySyncPathPrefix", "programClusterRoutes", "prometheusGoMetricsEnabled",
	"prometheusMetricsCAFile", "prometheusMetricsCertFile", "prometheusMetricsHost", "prometheusMetricsKeyFile",
	"prometheusProcessMetricsEnabled", "prometheusWireGuardMetricsEnabled", "removeExternalRoutes",
	"reportingTTL", "requireMTUFile", "routeSource", "routeSyncDisabled", "routeTableRange",
	"routeTableRanges", "serviceLoopPrevention", "sidecarAccelerationEnabled", "tproxyMode",
	"tproxyPort", "tproxyUpstreamConnMark", "useInternalDataplaneDriver", "vxlanMTUV6",
	"windowsManageFirewallRules", "wireguardEnabled", "wireguardEnabledV6", "wireguardHostEncryptionEnabled",
	"wireguardInterfaceName", "wireguardInterfaceNameV6", "wireguardKeepAlive", "wireguardListeningPort",
	"wireguardListeningPortV6", "wireguardMTU", "wireguardMTUV6", "wireguardRoutingRulePriority",
	"wireguardThreadingEnabled", "workloadSourceSpoofing", "xdpEnabled", "xdpRefreshInterval",
}

// kubeMetaFieldsUnsupported are Kubernetes ObjectMeta fields Calyx does
// not keep.
var kubeMetaFieldsUnsupported = []string{
	"deletionGracePeriodSeconds", "deletionTimestamp", "finalizers", "generateName",
	"generation", "managedFields", "ownerReferences", "selfLink",
}

// calicoFieldsUnsupported returns, for a Calyx type, the Calico v3 fields
// of the same object that Calyx does not support, and the Calico name of
// that object for the message.
func calicoFieldsUnsupported(t reflect.Type) (owner string, fields []string) {
	switch t {
	case reflect.TypeFor[NodeConfigurationSpec]():
		return "FelixConfiguration", felixFieldsUnsupported
	case reflect.TypeFor[ObjectMeta]():
		return "Kubernetes metadata", kubeMetaFieldsUnsupported
	case reflect.TypeFor[IPPoolSpec]():
		return "Calico IPPool", []string{"assignmentMode", "ipip", "nat-outgoing"}
	case reflect.TypeFor[IPAMConfigurationSpec]():
		return "Calico IPAMConfiguration", []string{"kubeVirtVMAddressPersistence"}
	case reflect.TypeFor[NodeSpec]():
		return "Calico Node", []string{"addresses", "interfaceName", "ipv4VXLANTunnelAddrV6", "vxlanTunnelMACAddrV6", "wireguard"}
	case reflect.TypeFor[NodeBGPSpec]():
		return "Calico Node", []string{"ipv6IPIPTunnelAddr"}
	case reflect.TypeFor[GlobalNetworkPolicySpec]():
		return "Calico GlobalNetworkPolicy", []string{"performanceHints", "stagedAction", "tier"}
	case reflect.TypeFor[Rule]():
		return "Calico rule", []string{"services"}
	case reflect.TypeFor[EntityRule]():
		return "Calico rule", []string{"services"}
	case reflect.TypeFor[WorkloadEndpointSpec]():
		return "Calico WorkloadEndpoint", []string{"allowSpoofedSourcePrefixes", "awsElasticIPs", "qosControls", "serviceAccountName"}
	case reflect.TypeFor[BGPPeerSpec]():
		return "Calico BGPPeer", []string{
			"birdGatewayMode", "failureDetectionMode", "filters", "keepaliveTime", "localASNumber",
			"localWorkloadSelector", "maxRestartTime", "nextHopMode", "numAllowedLocalASNumbers",
			"password", "reachableBy", "reversePeering", "restartMode", "ttlSecurity",
		}
	case reflect.TypeFor[BGPConfigurationSpec]():
		return "Calico BGPConfiguration", []string{
			"bindMode", "ignoredInterfaces", "localWorkloadPeeringIPV4", "localWorkloadPeeringIPV6",
			"nodeMeshMaxRestartTime", "nodeMeshPassword", "programClusterRoutes", "serviceLoadBalancerAggregation",
			"serviceLoadBalancerIPs",
		}
	}
	return "", nil
}

// unsupportedField is the strictDecoder hook that names Calico fields
// Calyx does not support.
func unsupportedField(t reflect.Type, key string) string {
	owner, fields := calicoFieldsUnsupported(t)
	if !slices.Contains(fields, key) {
		return ""
	}
	return owner + " field not supported by Calyx"
}

// calicoOnlyKinds explains Calico kinds that Calyx does not have.
var calicoOnlyKinds = map[string]string{
	"NetworkPolicy":                "Calico's namespaced NetworkPolicy is not a Calyx kind (Calyx resources are global): use GlobalNetworkPolicy, adding the namespace condition to its selector if you need one",
	"StagedNetworkPolicy":          "staged policies are not supported by Calyx: use GlobalNetworkPolicy",
	"StagedGlobalNetworkPolicy":    "staged policies are not supported by Calyx: use GlobalNetworkPolicy",
	"NetworkSet":                   "Calico's namespaced NetworkSet is not a Calyx kind (Calyx resources are global): use GlobalNetworkSet",
	"Tier":                         "policy tiers are not supported by Calyx: GlobalNetworkPolicy order decides precedence",
	"ClusterInformation":           "ClusterInformation is managed by Calico itself and has no Calyx equivalent",
	"KubeControllersConfiguration": "kube-controllers is Kubernetes-specific and has no Calyx equivalent",
	"IPReservation":                "IPReservation is not supported by Calyx",
	"BGPFilter":                    "BGPFilter is not supported by Calyx",
}

// convertCalico applies the conversions above to a projectcalico.org/v3
// document, in place, before it is decoded.
func convertCalico(kind string, obj map[string]any) {
	delete(obj, "status")
	if kind != KindWorkloadEndpoint {
		return
	}
	if meta, ok := obj["metadata"].(map[string]any); ok && meta["namespace"] == "default" {
		delete(meta, "namespace")
	}
}
