{{/*
Combinations of values that values.schema.json cannot refuse (it checks each value alone):
each stops `helm install`/`helm upgrade` with `fail`, naming the values and what to do.
Included by deployment.yaml, which every rendering has.
*/}}
{{- define "workflow-orchestrator.checks" -}}
{{- include "workflow-orchestrator.checkPorts" . }}
{{- include "workflow-orchestrator.checkManagementHost" . }}
{{- include "workflow-orchestrator.checkAutoscaling" . }}
{{- include "workflow-orchestrator.checkDisruptionBudget" . }}
{{- end }}

{{- define "workflow-orchestrator.checkPorts" -}}
{{- $server := .Values.config.server }}
{{- if eq (int $server.port) (int $server.managementPort) }}
{{- fail (printf "config.server.port and config.server.managementPort are both %d: the API and the management port (probes, metrics) need different ports" (int $server.port)) }}
{{- end }}
{{- if eq (int .Values.service.port) (int .Values.service.managementPort) }}
{{- fail (printf "service.port and service.managementPort are both %d: the Service needs a different port for each" (int .Values.service.port)) }}
{{- end }}
{{- end }}

{{/*
The management port listens on config.server.managementHost, or config.server.host when that is
empty. On a loopback address the kubelet's probes, the Service and Prometheus cannot reach it.
*/}}
{{- define "workflow-orchestrator.checkManagementHost" -}}
{{- $server := .Values.config.server }}
{{- $setting := "config.server.managementHost" }}
{{- $address := toString (get $server "managementHost") | trim }}
{{- if not $address }}
{{- $setting = "config.server.host" }}
{{- $address = toString (get $server "host") | trim }}
{{- end }}
{{- $bare := $address | lower | trimPrefix "[" | trimSuffix "]" | trimSuffix "." }}
{{- if or (eq $bare "localhost") (eq $bare "ip6-localhost") (eq $bare "::1") (eq $bare "0:0:0:0:0:0:0:1") (hasPrefix "127." $bare) }}
{{- fail (printf "%s: %s is a loopback address, so the management port (/health/live, /health/ready, /metrics) would be out of reach of the kubelet's probes, the Service and Prometheus; leave config.server.managementHost empty (config.server.host, 0.0.0.0 by default) or give an address of the pod" $setting $address) }}
{{- end }}
{{- end }}

{{- define "workflow-orchestrator.checkAutoscaling" -}}
{{- $scaling := .Values.autoscaling }}
{{- if and $scaling.enabled (gt (int $scaling.minReplicas) (int $scaling.maxReplicas)) }}
{{- fail (printf "autoscaling.minReplicas (%d) is above autoscaling.maxReplicas (%d): raise maxReplicas or lower minReplicas" (int $scaling.minReplicas) (int $scaling.maxReplicas)) }}
{{- end }}
{{- end }}

{{/*
A budget that lets no pod go blocks every node drain (`kubectl drain` waits forever). Kubernetes
rounds a percentage up to whole pods, for minAvailable and maxUnavailable alike; the check
counts the fewest replicas that run (replicaCount, or autoscaling.minReplicas).
*/}}
{{- define "workflow-orchestrator.checkDisruptionBudget" -}}
{{- $replicas := int (include "workflow-orchestrator.fewestReplicas" .) }}
{{- $budget := .Values.podDisruptionBudget }}
{{- if and $budget.enabled (gt $replicas 1) }}
{{- $counted := ternary "autoscaling.minReplicas" "replicaCount" .Values.autoscaling.enabled }}
{{- $minimum := index $budget "minAvailable" }}
{{- $maximum := index $budget "maxUnavailable" }}
{{- if not (kindIs "invalid" $minimum) }}
{{- if ge (int (include "workflow-orchestrator.budgetPods" (list $minimum $replicas))) $replicas }}
{{- fail (printf "podDisruptionBudget.minAvailable: %v of %d replicas (%s) keeps every pod, so no node could ever be drained; use a smaller minAvailable, or maxUnavailable: 1 (the default) without minAvailable" $minimum $replicas $counted) }}
{{- end }}
{{- else if kindIs "invalid" $maximum }}
{{- fail "podDisruptionBudget: set maxUnavailable (1 by default) or minAvailable, or enabled: false" }}
{{- else if eq (int (include "workflow-orchestrator.budgetPods" (list $maximum $replicas))) 0 }}
{{- fail (printf "podDisruptionBudget.maxUnavailable: %v lets no pod be evicted, so no node could ever be drained; use at least 1 (the default)" $maximum) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The fewest replicas the Deployment runs: autoscaling.minReplicas, else replicaCount.
*/}}
{{- define "workflow-orchestrator.fewestReplicas" -}}
{{- ternary .Values.autoscaling.minReplicas .Values.replicaCount .Values.autoscaling.enabled | int }}
{{- end }}

{{/*
Pods of a budget value (a number, or a percentage of the replicas rounded up, as Kubernetes
does); the argument is (list <value> <replicas>).
*/}}
{{- define "workflow-orchestrator.budgetPods" -}}
{{- $value := index . 0 }}
{{- $replicas := index . 1 }}
{{- if kindIs "string" $value }}
{{- $percent := trimSuffix "%" $value | int }}
{{- div (add (mul $percent $replicas) 99) 100 }}
{{- else }}
{{- int $value }}
{{- end }}
{{- end }}
