{{/* Names are cut to 63 characters, the limit of a label value and of a DNS
label (Service names). The full name is cut to 50 so that the longest suffix
the chart appends ("-scaler-lease") still fits. */}}
{{- define "tidegate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "tidegate.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "tidegate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | trunc 63 | trimSuffix "-" }}
{{ include "tidegate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The minimal, immutable selector: name and instance only. */}}
{{- define "tidegate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tidegate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* repository (after the registry, when one is given), then @digest when
one pins it, else :tag (default: the chart's appVersion). */}}
{{- define "tidegate.image" -}}
{{- $repository := .Values.image.repository -}}
{{- with .Values.image.registry -}}{{- $repository = printf "%s/%s" (trimSuffix "/" .) $repository -}}{{- end -}}
{{- if .Values.image.digest -}}
{{ $repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ $repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{- define "tidegate.redisSecret" -}}
{{- if .Values.redis.existingSecret -}}{{ .Values.redis.existingSecret }}{{- else -}}{{ include "tidegate.fullname" . }}-redis{{- end -}}
{{- end -}}

{{/* Secure defaults for every tidegate container (a part's securityContext
overrides them key by key: "tidegate.securityContexts"). */}}
{{- define "tidegate.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Volumes and mounts every tidegate pod needs: the config and a writable
/tmp on a read-only root filesystem. */}}
{{- define "tidegate.volumes" -}}
- name: config
  configMap:
    name: {{ include "tidegate.fullname" . }}-config
- name: tmp
  emptyDir: {}
{{- if .Values.redis.urlAsFile }}
- name: redis-url
  secret:
    secretName: {{ include "tidegate.redisSecret" . }}
    items:
      - key: {{ .Values.redis.existingSecretKey }}
        path: url
{{- end }}
{{- end -}}

{{- define "tidegate.volumeMounts" -}}
- name: config
  mountPath: /etc/tidegate
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- if .Values.redis.urlAsFile }}
- name: redis-url
  mountPath: /etc/tidegate-redis
  readOnly: true
{{- end }}
{{- end -}}

{{- define "tidegate.hasTenants" -}}
{{- if or .Values.tenants.list .Values.tenants.existingSecret -}}true{{- end -}}
{{- end -}}

{{- define "tidegate.redisEnv" -}}
{{- if .Values.redis.urlAsFile }}
- name: TIDEGATE_REDIS_URL_FILE
  value: /etc/tidegate-redis/url
{{- else }}
- name: TIDEGATE_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "tidegate.redisSecret" . }}
      key: {{ .Values.redis.existingSecretKey }}
{{- end }}
- name: TIDEGATE_REDIS_MODE
  value: {{ .Values.redis.mode | quote }}
{{- if eq .Values.redis.mode "sentinel" }}
- name: TIDEGATE_REDIS_SENTINELS
  value: {{ join "," .Values.redis.sentinels | quote }}
- name: TIDEGATE_REDIS_SENTINEL_MASTER
  value: {{ .Values.redis.sentinelMaster | quote }}
{{- end }}
{{- end -}}

{{/* What both parts' containers take in their environment: Redis and logging. */}}
{{- define "tidegate.partEnv" -}}
{{ include "tidegate.redisEnv" . }}
- name: TIDEGATE_LOG_LEVEL
  value: {{ .Values.logging.level | quote }}
- name: TIDEGATE_LOG_FORMAT
  value: {{ .Values.logging.format | quote }}
{{- end -}}

{{/* OpenTelemetry's variables of a part that makes spans, when the release
traces (tracing.endpoint) and the part is not left out: call with
(dict "root" $ "part" <its values> "service" <default service name>). */}}
{{- define "tidegate.tracingEnv" -}}
{{- $t := .root.Values.tracing }}
{{- $p := .part.tracing | default dict }}
{{- if and $t.endpoint (dig "enabled" true $p) }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ $t.endpoint | quote }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: http/protobuf
- name: OTEL_SERVICE_NAME
  value: {{ $p.serviceName | default .service | quote }}
- name: OTEL_TRACES_SAMPLER
  value: {{ $t.sampler | quote }}
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ $t.samplerArg | toString | quote }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ list (printf "k8s.namespace.name=%s" .root.Release.Namespace) $t.resourceAttributes | compact | join "," | quote }}
{{- with $t.headersSecret.name }}
- name: OTEL_EXPORTER_OTLP_HEADERS
  valueFrom:
    secretKeyRef:
      name: {{ . | quote }}
      key: {{ $t.headersSecret.key | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "tidegate.podSecurityContext" -}}
runAsNonRoot: true
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}


{{/* What both parts' pods take the same way, from their own values: call
with (dict "root" $ "part" .Values.gateway "component" "gateway"). */}}
{{- define "tidegate.podLabels" -}}
{{ include "tidegate.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- with .part.podLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The pod's security context: the chart's secure defaults, each key the
part's podSecurityContext names replaced. */}}
{{- define "tidegate.podSecurity" -}}
{{- merge (deepCopy .part.podSecurityContext) (include "tidegate.podSecurityContext" .root | fromYaml) | toYaml -}}
{{- end -}}

{{- define "tidegate.containerSecurity" -}}
{{- merge (deepCopy .part.securityContext) (include "tidegate.containerSecurityContext" .root | fromYaml) | toYaml -}}
{{- end -}}

{{/* Scheduling and the pod's runtime: priority class, runtime class, DNS,
a user namespace (hostUsers), host aliases, service links, spread, node selector, tolerations, affinity. */}}
{{- define "tidegate.podPlacement" -}}
{{- with .part.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .part.runtimeClassName }}
runtimeClassName: {{ . }}
{{- end }}
{{- with .part.dnsPolicy }}
dnsPolicy: {{ . }}
{{- end }}
{{- with .part.dnsConfig }}
dnsConfig:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if not (kindIs "invalid" .part.hostUsers) }}
hostUsers: {{ .part.hostUsers }}
{{- end }}
{{- with .part.hostAliases }}
hostAliases:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- /* tidegate reads no service's address from its environment */}}
enableServiceLinks: {{ .part.enableServiceLinks | default false }}
{{- with .part.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .part.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .part.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .part.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* The admin port's probes, timed by the part's livenessProbe and readinessProbe. */}}
{{/* A part's ServiceAccount: the one the chart creates (named after the
part unless serviceAccount.name says otherwise), or an existing one
(serviceAccount.name; "default" when none is given). Call with (dict "root" $
"part" .Values.scaler "component" "scaler"). */}}
{{- define "tidegate.serviceAccountName" -}}
{{- $sa := .part.serviceAccount -}}
{{- if $sa.create -}}
{{ $sa.name | default (printf "%s-%s" (include "tidegate.fullname" .root) .component) }}
{{- else -}}
{{ $sa.name | default "default" }}
{{- end -}}
{{- end -}}

{{- define "tidegate.probes" -}}
{{- range $probe, $path := dict "startupProbe" "/healthz" "livenessProbe" "/healthz" "readinessProbe" "/readyz" }}
{{- $given := get $.part $probe }}
{{- if dig "enabled" true $given }}
{{ $probe }}:
  httpGet:
    path: {{ $path }}
    port: admin
  {{- toYaml (omit $given "enabled") | nindent 2 }}
{{- end }}
{{- end }}
{{- end -}}

{{/* One egress rule from {ports, to} (no ports: no rule; no peers: anywhere). */}}
{{- define "tidegate.egressRule" -}}
{{- if .ports }}
- ports:
    {{- range .ports }}
    - {port: {{ . }}, protocol: TCP}
    {{- end }}
  {{- with .to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end -}}

{{/* Dual stack, the same for the public and the admin Service: call with
.Values.gateway.service. */}}
{{- define "tidegate.ipFamilies" -}}
{{- with .ipFamilyPolicy }}
ipFamilyPolicy: {{ . }}
{{- end }}
{{- with .ipFamilies }}
ipFamilies:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
