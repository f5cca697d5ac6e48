{{/*
Names, labels and the pieces every Ruvon container shares.
*/}}

{{- define "ruvon.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* "<release>-<chart>", or the release alone when it already contains the chart name. */}}
{{- define "ruvon.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "ruvon.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ruvon.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ruvon.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "ruvon.labels" -}}
helm.sh/chart: {{ include "ruvon.chart" . }}
{{ include "ruvon.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ruvon
{{- end }}

{{/* A name made of the full name and a suffix, cut to a DNS label (63 characters). */}}
{{- define "ruvon.componentName" -}}
{{- printf "%s-%s" (include "ruvon.fullname" .root) .suffix | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ruvon.workerName" -}}
{{- include "ruvon.componentName" (dict "root" .root "suffix" (printf "worker-%s" .pool.name)) }}
{{- end }}

{{- define "ruvon.workerSelectorLabels" -}}
{{ include "ruvon.selectorLabels" .root }}
app.kubernetes.io/component: worker
ruvon/worker-pool: {{ .pool.name }}
{{- end }}

{{- define "ruvon.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ruvon.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "ruvon.secretName" -}}
{{- default (include "ruvon.fullname" .) .Values.existingSecret.name }}
{{- end }}

{{/* The Secret with Flower's "user:password": yours (existingSecret, formerly secretName) or the
generated one. */}}
{{- define "ruvon.flowerAuthSecret" -}}
{{- $auth := .Values.flower.basicAuth }}
{{- $generated := include "ruvon.componentName" (dict "root" . "suffix" "flower-auth") }}
{{- coalesce $auth.existingSecret $auth.secretName $generated }}
{{- end }}

{{/* The image of the chart, or of a pool when `override` (a pool's `image`) sets a field. */}}
{{- define "ruvon.image" -}}
{{- $image := mergeOverwrite (deepCopy .root.Values.image) (.override | default dict) }}
{{- printf "%s:%s" $image.repository (toString (default .root.Chart.AppVersion $image.tag)) }}
{{- end }}

{{- define "ruvon.imagePullPolicy" -}}
{{- $image := mergeOverwrite (deepCopy .root.Values.image) (.override | default dict) }}
{{- $image.pullPolicy }}
{{- end }}

{{- define "ruvon.metricsEnabled" -}}
{{- if or .Values.metrics.enabled .Values.metrics.serviceMonitor.enabled }}true{{ end }}
{{- end }}

{{/*
One worker pool with the workerDefaults filled in, as YAML (read it back with fromYaml).
A key the pool sets wins, even when its value is false, 0 or null (sprig's merge would let
such values lose); the maps listed in $merged are merged key by key the same way.
*/}}
{{- define "ruvon.workerPool" -}}
{{- $defaults := .root.Values.workerDefaults }}
{{- $pool := .pool }}
{{- $merged := list "autoscaling" "podDisruptionBudget" "image" "healthCheck" "livenessProbe" "readinessProbe" }}
{{- $out := dict "name" $pool.name "queues" $pool.queues }}
{{- range $key, $value := $defaults }}
{{- if not (hasKey $pool $key) }}
{{- $_ := set $out $key $value }}
{{- else if and (has $key $merged) (kindIs "map" $value) (kindIs "map" (get $pool $key)) }}
{{- $map := deepCopy $value }}
{{- range $k, $v := get $pool $key }}
{{- $_ := set $map $k $v }}
{{- end }}
{{- $_ := set $out $key $map }}
{{- else }}
{{- $_ := set $out $key (get $pool $key) }}
{{- end }}
{{- end }}
{{- toYaml $out }}
{{- end }}

{{/* True (non-empty) when a pool is scaled by KEDA rather than by an HPA. */}}
{{- define "ruvon.kedaScaled" -}}
{{- if and .pool.autoscaling.enabled .root.Values.keda.enabled }}true{{ end }}
{{- end }}

{{/* Secret-backed and plain variables of every Ruvon container. `broker`: add broker URLs. */}}
{{- define "ruvon.env" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
- name: RUVON_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "ruvon.secretName" $root }}
      key: {{ $v.existingSecret.databaseUrlKey }}
{{- if .broker }}
- name: RUVON_BROKER_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "ruvon.secretName" $root }}
      key: {{ $v.existingSecret.brokerUrlKey }}
{{- if $v.existingSecret.resultBackendKey }}
- name: RUVON_RESULT_BACKEND
  valueFrom:
    secretKeyRef:
      name: {{ include "ruvon.secretName" $root }}
      key: {{ $v.existingSecret.resultBackendKey }}
{{- end }}
- name: RUVON_DEFAULT_QUEUE
  value: {{ $v.settings.defaultQueue | quote }}
- name: RUVON_MAINTENANCE_QUEUE
  value: {{ $v.settings.maintenanceQueue | quote }}
{{- if $v.settings.brokerKeyPrefix }}
- name: RUVON_BROKER_KEY_PREFIX
  value: {{ $v.settings.brokerKeyPrefix | quote }}
{{- end }}
{{- end }}
{{- range $name, $value := merge (dict) (.env | default dict) $v.env }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- with $v.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "ruvon.envFrom" -}}
{{- with .Values.extraEnvFrom }}
envFrom:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* The pod-level fields shared by every pod: pull secrets, security context, scheduling. */}}
{{- define "ruvon.podCommon" -}}
{{- $root := .root }}
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml $root.Values.podSecurityContext | nindent 2 }}
{{- with .spec.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .spec.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .spec.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .spec.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{- define "ruvon.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- end }}

{{/* The Secret holding the server's tokens file: yours (server.tokens.existingSecret) or the one
the chart writes from server.tokens.entries. */}}
{{- define "ruvon.serverTokensSecret" -}}
{{- $generated := include "ruvon.componentName" (dict "root" . "suffix" "server-tokens") }}
{{- default $generated .Values.server.tokens.existingSecret }}
{{- end }}

{{/* The Secret holding RUVON_SERVER_SESSION_SECRET: yours or the generated one. */}}
{{- define "ruvon.serverSessionSecret" -}}
{{- $generated := include "ruvon.componentName" (dict "root" . "suffix" "server-session") }}
{{- default $generated .Values.server.sessionSecret.existingSecret }}
{{- end }}
