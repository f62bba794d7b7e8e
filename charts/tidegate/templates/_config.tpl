{{/* The tidegate config file every part reads, the workers' relay sidecars
included (the Redis URL and the tenants come from Secrets, through
TIDEGATE_REDIS_URL and tenants_file). */}}
{{- define "tidegate.namespaces" -}}
{{- if .Values.scaler.namespaces -}}{{ toJson .Values.scaler.namespaces }}{{- else -}}{{ toJson (list .Release.Namespace) }}{{- end -}}
{{- end -}}

{{- define "tidegate.config" -}}
{{- $gateway := merge (dict "listen" "0.0.0.0:8080" "admin_listen" "0.0.0.0:9090" "drain_delay_s" .Values.gateway.drainDelaySeconds "shutdown_grace_s" .Values.gateway.shutdownGraceSeconds) .Values.gateway.config -}}
{{- /* Keys the manifests depend on (ports, RBAC namespaces) are the chart's;
scaler.config may set any other, the Lease's name included (its RBAC rule
follows the config). merge: the first dict's keys win. */ -}}
{{- $owned := dict "namespaces" (include "tidegate.namespaces" . | fromJsonArray) "lease_namespace" .Release.Namespace "admin_listen" "0.0.0.0:9091" -}}
{{- $scaler := merge $owned (deepCopy .Values.scaler.config) (dict "lease_name" (printf "%s-scaler" (include "tidegate.fullname" .))) -}}
{{- /* Redis's topology is in the config every part reads (workers too, with
nothing to copy by hand); only the URL, which may hold a password, comes
from the Secret (TIDEGATE_REDIS_URL). */ -}}
{{- $redis := dict "mode" .Values.redis.mode -}}
{{- if eq .Values.redis.mode "sentinel" -}}
{{- $_ := set $redis "sentinels" .Values.redis.sentinels -}}
{{- $_ := set $redis "sentinel_master" .Values.redis.sentinelMaster -}}
{{- end -}}
{{- $config := dict "redis" $redis "gateway" $gateway "scaler" $scaler "routes" .Values.routes -}}
{{- if include "tidegate.hasTenants" . -}}
{{- $_ := set $config "tenants_file" "/etc/tidegate-tenants/tenants.yaml" -}}
{{- end -}}
{{- toYaml $config -}}
{{- end -}}

{{- define "tidegate.tenantsSecret" -}}
{{- if .Values.tenants.existingSecret -}}{{ .Values.tenants.existingSecret }}{{- else -}}{{ include "tidegate.fullname" . }}-tenants{{- end -}}
{{- end -}}
