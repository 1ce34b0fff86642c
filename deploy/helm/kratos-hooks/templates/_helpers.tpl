{{/* Names and labels ------------------------------------------------------------------ */}}

{{- define "kratos-hooks.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kratos-hooks.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "kratos-hooks.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kratos-hooks.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "kratos-hooks.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "kratos-hooks.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "kratos-hooks.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "kratos-hooks.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "kratos-hooks.secretName" -}}
{{- default (include "kratos-hooks.fullname" .) .Values.secrets.name -}}
{{- end -}}

{{- define "kratos-hooks.rulesConfigMap" -}}
{{- default (printf "%s-rules" (include "kratos-hooks.fullname" .)) .Values.decisions.existingConfigMap -}}
{{- end -}}

{{- define "kratos-hooks.hasRules" -}}
{{- if or .Values.decisions.rules .Values.decisions.existingConfigMap -}}true{{- end -}}
{{- end -}}

{{/* The settings file ---------------------------------------------------------------------
Helm reads every number in values as a float64 (and its own toToml writes 15 as 15.0, which
the service's integer settings refuse), so the file is written here: integral numbers as
integers, strings as JSON strings (valid TOML basic strings), lists inline, null = left out
(how a default is removed from the command line). */}}

{{- define "kratos-hooks.tomlValue" -}}
{{- $kind := kindOf . -}}
{{- if eq $kind "bool" -}}
{{- . -}}
{{- else if eq $kind "float64" -}}
{{- if eq (float64 (int64 .)) . -}}{{ int64 . }}{{- else -}}{{ . }}{{- end -}}
{{- else if or (eq $kind "int") (eq $kind "int64") -}}
{{- . -}}
{{- else if eq $kind "string" -}}
{{- toJson . -}}
{{- else if eq $kind "slice" -}}
[{{ range $i, $item := . }}{{ if $i }}, {{ end }}{{ include "kratos-hooks.tomlValue" $item }}{{ end }}]
{{- else -}}
{{- fail (printf "config: %v is not a TOML value (a string, number, boolean or list)" .) -}}
{{- end -}}
{{- end -}}

{{/* What the chart sets itself (the schema refuses these keys in .Values.config, so an
override can never silently disagree with the container ports or the mounts). */}}
{{- define "kratos-hooks.settings" -}}
{{- $config := deepCopy (.Values.config | default dict) -}}
{{- $server := get $config "server" | default dict -}}
{{- $_ := set $server "public_listen" (printf "%s:%d" .Values.listenHost (int .Values.ports.public)) -}}
{{- $_ = set $server "internal_listen" (printf "%s:%d" .Values.listenHost (int .Values.ports.internal)) -}}
{{- $_ = set $server "shutdown_timeout" .Values.shutdown.timeoutSeconds -}}
{{- $_ = set $config "server" $server -}}
{{- $store := get $config "store" | default dict -}}
{{- $_ = set $store "spool_dir" "/var/spool/kratos-hooks" -}}
{{- $_ = set $config "store" $store -}}
{{- if include "kratos-hooks.hasRules" . -}}
{{- $decisions := get $config "decisions" | default dict -}}
{{- $_ = set $decisions "rules_file" (printf "/etc/kratos-hooks/rules/%s" .Values.decisions.rulesKey) -}}
{{- $_ = set $config "decisions" $decisions -}}
{{- end -}}
{{- toJson $config -}}
{{- end -}}

{{- define "kratos-hooks.settingsToml" -}}
# Rendered by the kratos-hooks chart from .Values.config; environment variables win over it.
{{- $config := include "kratos-hooks.settings" . | fromJson }}
{{- range $section := keys $config | sortAlpha }}
{{- $table := get $config $section }}
{{- if not (kindIs "map" $table) }}
{{- fail (printf "config.%s must be a map of settings" $section) }}
{{- end }}

[{{ $section }}]
{{- range $key := keys $table | sortAlpha }}
{{- $value := get $table $key }}
{{- if not (kindIs "invalid" $value) }}
{{ $key }} = {{ include "kratos-hooks.tomlValue" $value }}
{{- end }}
{{- end }}
{{- end }}
{{ end -}}

{{/* Draining ------------------------------------------------------------------------------
After SIGTERM the listeners get SHUTDOWN_TIMEOUT for in-flight requests, then the hooks'
background work gets SHUTDOWN_TIMEOUT again (and the login guard up to 5 s to record the
attempts it is settling): the pod must be given longer than preStop + both, or the kubelet's
SIGKILL cuts a login or a welcome event short. */}}
{{- define "kratos-hooks.drainBound" -}}
{{- $timeout := int (ceil .Values.shutdown.timeoutSeconds) -}}
{{- add (int .Values.shutdown.preStopSleepSeconds) (mul 2 $timeout) 5 -}}
{{- end -}}

{{- define "kratos-hooks.terminationGracePeriodSeconds" -}}
{{- $bound := include "kratos-hooks.drainBound" . | int -}}
{{- $set := .Values.shutdown.terminationGracePeriodSeconds -}}
{{- if kindIs "invalid" $set -}}
{{- add $bound 5 -}}
{{- else if le (int $set) $bound -}}
{{- fail (printf "shutdown.terminationGracePeriodSeconds=%v must be above %d (preStopSleepSeconds + 2 x timeoutSeconds + 5)" $set $bound) -}}
{{- else -}}
{{- int $set -}}
{{- end -}}
{{- end -}}

{{/* NetworkPolicy peers: namespaces by name (empty = the release's own), pods by labels
(empty = every pod there). An empty "from" would admit everyone, so a port whose peer list
comes out empty gets no rule at all (nothing is admitted to it). */}}
{{- define "kratos-hooks.peer" -}}
{{- $peer := dict -}}
{{- if .namespaces -}}
{{- $names := dict "key" "kubernetes.io/metadata.name" "operator" "In" "values" .namespaces -}}
{{- $_ := set $peer "namespaceSelector" (dict "matchExpressions" (list $names)) -}}
{{- end -}}
{{- $_ := set $peer "podSelector" (ternary (dict "matchLabels" .podLabels) (dict) (not (empty .podLabels))) -}}
{{- toYaml (list $peer) -}}
{{- end -}}

{{/* Alert rules: which series are this release's -------------------------------------- */}}
{{- define "kratos-hooks.alertSelector" -}}
job="{{ .Values.metrics.job }}"{{ if .Values.prometheusRule.matchNamespace }},namespace="{{ .Release.Namespace }}"{{ end }}
{{- end -}}

{{- define "kratos-hooks.alertBy" -}}
job{{ if .Values.prometheusRule.matchNamespace }}, namespace{{ end }}
{{- end -}}
