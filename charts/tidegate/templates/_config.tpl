{{/* The tidegate config file every part reads (the Redis URL and the tenants
come from Secrets, through TIDEGATE_REDIS_URL and tenants_file). */}}
{{- define "tidegate.namespaces" -}}
{{- if .Values.scaler.namespaces -}}{{ toJson .Values.scaler.namespaces }}{{- else -}}{{ toJson (list .Release.Namespace) }}{{- end -}}
{{- end -}}

{{- define "tidegate.config" -}}
{{- $gateway := merge (dict "listen" "0.0.0.0:8080" "admin_listen" "0.0.0.0:9090" "shutdown_grace_s" .Values.gateway.shutdownGraceSeconds) .Values.gateway.config -}}
{{- $scaler := merge (dict "namespaces" (include "tidegate.namespaces" . | fromJsonArray) "lease_name" (printf "%s-scaler" (include "tidegate.fullname" .)) "lease_namespace" .Release.Namespace "admin_listen" "0.0.0.0:9091") .Values.scaler.config -}}
{{- $config := dict "gateway" $gateway "scaler" $scaler "routes" .Values.routes -}}
{{- if include "tidegate.hasTenants" . -}}
{{- $_ := set $config "tenants_file" "/etc/tidegate-tenants/tenants.yaml" -}}
{{- end -}}
{{- toYaml $config -}}
{{- end -}}

{{- define "tidegate.tenantsSecret" -}}
{{- if .Values.tenants.existingSecret -}}{{ .Values.tenants.existingSecret }}{{- else -}}{{ include "tidegate.fullname" . }}-tenants{{- end -}}
{{- end -}}
