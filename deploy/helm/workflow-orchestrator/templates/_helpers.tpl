{{/*
Names and labels.
*/}}
{{- define "workflow-orchestrator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The release's base name: the release name when it contains the chart's name (so the guide's
`helm install workflow-orchestrator ...` gives the Deployment, Service and Secret the guide's
names), else <release>-<chart>. Truncated so that "<fullname>-migrate" fits 63 characters.
*/}}
{{- define "workflow-orchestrator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 55 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 55 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 55 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "workflow-orchestrator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "workflow-orchestrator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "workflow-orchestrator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "workflow-orchestrator.labels" -}}
helm.sh/chart: {{ include "workflow-orchestrator.chart" . }}
{{ include "workflow-orchestrator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
The serving pods. The component label keeps the migration Job's pods out of the Service, the
PodDisruptionBudget and the autoscaler.
*/}}
{{- define "workflow-orchestrator.serverSelectorLabels" -}}
{{ include "workflow-orchestrator.selectorLabels" . }}
app.kubernetes.io/component: server
{{- end }}

{{- define "workflow-orchestrator.serverLabels" -}}
{{ include "workflow-orchestrator.labels" . }}
app.kubernetes.io/component: server
{{- end }}

{{- define "workflow-orchestrator.migrationLabels" -}}
{{ include "workflow-orchestrator.labels" . }}
app.kubernetes.io/component: migration
{{- end }}

{{- define "workflow-orchestrator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "workflow-orchestrator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The migration Job runs before the release's own objects exist (pre-install), so it has its own
ServiceAccount when the chart creates one.
*/}}
{{- define "workflow-orchestrator.migrationServiceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- printf "%s-migrate" (include "workflow-orchestrator.fullname" .) }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "workflow-orchestrator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
The Secret and key the pods read DATABASE_PASSWORD from; empty when there is no password.
*/}}
{{- define "workflow-orchestrator.passwordSecretName" -}}
{{- if and .Values.database.existingSecret .Values.database.password }}
{{- fail "database.password and database.existingSecret are both set: give the password in one of them" }}
{{- end }}
{{- if .Values.database.existingSecret }}
{{- .Values.database.existingSecret }}
{{- else if .Values.database.password }}
{{- printf "%s-database" (include "workflow-orchestrator.fullname" .) }}
{{- end }}
{{- end }}

{{/*
"true" when the chart holds the password (database.password without database.existingSecret)
and so creates the Secret <fullname>-database; empty otherwise. The name is not the guide's
workflow-orchestrator-secrets: that one is the user's (it also holds kafka-password), and the
chart must never own or overwrite it.
*/}}
{{- define "workflow-orchestrator.ownsPasswordSecret" -}}
{{- if and .Values.database.password (not .Values.database.existingSecret) }}true{{ end }}
{{- end }}

{{/*
The data of the password Secrets the chart creates (<fullname>-database and the migration
hook's <fullname>-migrate).
*/}}
{{- define "workflow-orchestrator.passwordSecretData" -}}
database-password: {{ .Values.database.password | b64enc | quote }}
{{- end }}

{{/*
The pods' checksum/secret annotation: a change of the chart's Secret (`helm upgrade --set
database.password=...`) rolls the pods, which read DATABASE_PASSWORD only when they start.
The release's namespace and name are hashed with the data, so the annotation cannot be looked
up in a table of hashes of common passwords.
*/}}
{{- define "workflow-orchestrator.passwordSecretChecksum" -}}
{{- printf "%s/%s\n%s" .Release.Namespace (include "workflow-orchestrator.passwordSecretName" .) (include "workflow-orchestrator.passwordSecretData" .) | sha256sum }}
{{- end }}

{{- define "workflow-orchestrator.passwordSecretKey" -}}
{{- if .Values.database.existingSecret }}
{{- .Values.database.existingSecretPasswordKey }}
{{- else }}
{{- print "database-password" }}
{{- end }}
{{- end }}

{{/*
jdbc:postgresql://host:port/name[?parameters]; an IPv6 address in brackets.
*/}}
{{- define "workflow-orchestrator.databaseUrl" -}}
{{- $host := .Values.database.host }}
{{- if contains ":" $host }}
{{- $host = printf "[%s]" $host }}
{{- end }}
{{- $url := printf "jdbc:postgresql://%s:%d/%s" $host (int .Values.database.port) .Values.database.name }}
{{- $query := list }}
{{- range $key := keys .Values.database.parameters | sortAlpha }}
{{- $query = append $query (printf "%s=%s" (urlquery $key) (urlquery (toString (get $.Values.database.parameters $key)))) }}
{{- end }}
{{- if $query }}
{{- $url = printf "%s?%s" $url (join "&" $query) }}
{{- end }}
{{- $url }}
{{- end }}

{{/*
databaseUrl with the values of its parameters masked, for NOTES.txt (which `helm install`
prints and `helm status` shows again): jdbc:postgresql://host:port/name[?key=****&...].
*/}}
{{- define "workflow-orchestrator.maskedDatabaseUrl" -}}
{{- $url := include "workflow-orchestrator.databaseUrl" . }}
{{- $masked := list }}
{{- range $key := keys .Values.database.parameters | sortAlpha }}
{{- $masked = append $masked (printf "%s=****" (urlquery $key)) }}
{{- end }}
{{- if $masked }}
{{- $url = printf "%s?%s" (splitList "?" $url | first) (join "&" $masked) }}
{{- end }}
{{- $url }}
{{- end }}

{{/*
The content of application.yaml: config, plus the database's location and user.
database.migrateOnStartup stays as config says (true by default) even with the migration Job:
an upgrade that bypasses Helm's hooks (the guide's `kubectl set image`) then still migrates,
instead of leaving the new pods unready until someone runs `migrate`. After the Job, the pods'
migration finds the schema current and does nothing (an advisory lock serialises them).
*/}}
{{- define "workflow-orchestrator.applicationYaml" -}}
{{- $config := deepCopy .Values.config }}
{{- $database := default dict (get $config "database") }}
{{- $_ := set $database "url" (include "workflow-orchestrator.databaseUrl" .) }}
{{- $_ = set $database "username" .Values.database.user }}
{{- $_ = set $config "database" $database }}
{{- toYaml $config }}
{{- end }}

{{/*
Seconds of config.server.shutdownGracePeriod (a number of seconds, or a number with ms, s, m,
h or d), rounded up.
*/}}
{{- define "workflow-orchestrator.shutdownGraceSeconds" -}}
{{- $value := get .Values.config.server "shutdownGracePeriod" }}
{{- if kindIs "invalid" $value }}
{{- $value = "30s" }}
{{- end }}
{{- $raw := toString $value | lower | trim }}
{{- $number := regexFind "^[0-9]+(\\.[0-9]+)?" $raw }}
{{- $unit := trimPrefix $number $raw | trim }}
{{- $factors := dict "" 1.0 "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0 "d" 86400.0 }}
{{- if or (not $number) (not (hasKey $factors $unit)) }}
{{- fail (printf "config.server.shutdownGracePeriod: expected a duration such as 30s, 500ms or 2m, got %q" $raw) }}
{{- end }}
{{- mulf (float64 $number) (get $factors $unit) | ceil | int }}
{{- end }}

{{/*
The pods' terminationGracePeriodSeconds: longer than the whole stop (preStop wait, then the
shutdown grace period, then up to about 15 seconds to cancel work and close the pools).
*/}}
{{- define "workflow-orchestrator.terminationGracePeriodSeconds" -}}
{{- $grace := include "workflow-orchestrator.shutdownGraceSeconds" . | int }}
{{- $needed := add (int .Values.preStopSleepSeconds) $grace 15 }}
{{- if kindIs "string" .Values.terminationGracePeriodSeconds }}
{{- add $needed 5 }}
{{- else if lt (int .Values.terminationGracePeriodSeconds) $needed }}
{{- fail (printf "terminationGracePeriodSeconds: %d is too short; the pods need at least %d (preStopSleepSeconds %d + config.server.shutdownGracePeriod %ds + 15s to cancel work and close the database pools); raise it or leave it empty to derive it" (int .Values.terminationGracePeriodSeconds) $needed (int .Values.preStopSleepSeconds) $grace) }}
{{- else }}
{{- int .Values.terminationGracePeriodSeconds }}
{{- end }}
{{- end }}

{{/*
HTTPS when the management port serves TLS (server.managementTls, else server.tls).
*/}}
{{- define "workflow-orchestrator.managementScheme" -}}
{{- $server := .Values.config.server }}
{{- $tls := default dict (get $server "tls") }}
{{- if hasKey $server "managementTls" }}
{{- $tls = default dict (get $server "managementTls") }}
{{- end }}
{{- if eq (toString (get $tls "enabled") | lower) "true" }}HTTPS{{ else }}HTTP{{ end }}
{{- end }}

{{/*
HTTPS when the API port serves TLS (server.tls).
*/}}
{{- define "workflow-orchestrator.apiScheme" -}}
{{- $tls := default dict (get .Values.config.server "tls") }}
{{- if eq (toString (get $tls "enabled") | lower) "true" }}HTTPS{{ else }}HTTP{{ end }}
{{- end }}

{{/*
The environment of the service's processes (the pods and the migration Job); the argument is
(list $ <name of the Secret holding the password, empty for none>).
*/}}
{{- define "workflow-orchestrator.env" -}}
{{- $root := index . 0 -}}
- name: WORKFLOW_CONFIG
  value: /app/config/application.yaml
{{- with index . 1 }}
- name: DATABASE_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ include "workflow-orchestrator.passwordSecretKey" $root }}
{{- end }}
{{- with $root.Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "workflow-orchestrator.volumeMounts" -}}
- name: config
  mountPath: /app/config
  readOnly: true
- name: tmp
  mountPath: /tmp
- name: logs
  mountPath: /var/log/workflow-orchestrator
{{- with .Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Volumes; the argument is (list $ <name of the ConfigMap holding application.yaml>).
*/}}
{{- define "workflow-orchestrator.volumes" -}}
{{- $root := index . 0 -}}
- name: config
  configMap:
    name: {{ index . 1 }}
- name: tmp
  emptyDir: {{ with $root.Values.tmpVolume.sizeLimit }}{sizeLimit: {{ . }}}{{ else }}{}{{ end }}
- name: logs
  emptyDir: {{ with $root.Values.logVolume.sizeLimit }}{sizeLimit: {{ . }}}{{ else }}{}{{ end }}
{{- with $root.Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}
