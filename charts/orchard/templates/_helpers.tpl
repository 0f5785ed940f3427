{{/* Chart name, truncated to 63 characters (the DNS label limit). */}}
{{- define "orchard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name, truncated to 63 characters. When the release name already
contains the chart name it is used as is.
*/}}
{{- define "orchard.fullname" -}}
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

{{/* Chart name and version, for the helm.sh/chart label. */}}
{{- define "orchard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
A component's resource name: "<fullname>-<component>", the fullname cut so the whole
stays within 63 characters. Call with (dict "root" $ "component" "gateway").
*/}}
{{- define "orchard.componentName" -}}
{{- $suffix := printf "-%s" .component }}
{{- printf "%s%s" (include "orchard.fullname" .root | trunc (int (sub 63 (len $suffix))) | trimSuffix "-") $suffix }}
{{- end }}

{{/* Selector labels; with a component: (dict "root" $ "component" "gateway"). */}}
{{- define "orchard.selectorLabels" -}}
{{- $root := .root | default . -}}
app.kubernetes.io/name: {{ include "orchard.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
{{- if .component }}
app.kubernetes.io/component: {{ .component }}
{{- end }}
{{- end }}

{{/* Common labels; with a component: (dict "root" $ "component" "gateway"). */}}
{{- define "orchard.labels" -}}
{{- $root := .root | default . -}}
helm.sh/chart: {{ include "orchard.chart" $root }}
{{ include "orchard.selectorLabels" . }}
app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: orchard
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
{{- end }}

{{/* A component's ServiceAccount name: (dict "root" $ "component" "retraining"). */}}
{{- define "orchard.serviceAccountName" -}}
{{- $account := index .root.Values.serviceAccounts .component }}
{{- if $account.create }}
{{- default (include "orchard.componentName" .) $account.name }}
{{- else }}
{{- default "default" $account.name }}
{{- end }}
{{- end }}

{{/* An image reference: (dict "root" $ "image" .Values.gateway.image). */}}
{{- define "orchard.image" -}}
{{- $registry := .image.registry | default .root.Values.global.imageRegistry }}
{{- $tag := .image.tag | default .root.Chart.AppVersion }}
{{- if .image.digest }}
{{- printf "%s/%s@%s" $registry .image.repository .image.digest }}
{{- else }}
{{- printf "%s/%s:%s" $registry .image.repository $tag }}
{{- end }}
{{- end }}

{{/* In-cluster base URL of a component's Service: (dict "root" $ "component" "gateway"). */}}
{{- define "orchard.url" -}}
{{- $values := index .root.Values .component }}
{{- printf "http://%s.%s.svc:%d" (include "orchard.componentName" .) .root.Release.Namespace (int $values.port) }}
{{- end }}

{{/* Restricted Pod Security: the pod-level part. */}}
{{- define "orchard.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.global.securityContext.runAsUser }}
runAsGroup: {{ .Values.global.securityContext.runAsUser }}
fsGroup: {{ .Values.global.securityContext.runAsUser }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Restricted Pod Security: the container-level part (read-only root filesystem). */}}
{{- define "orchard.containerSecurityContext" -}}
runAsNonRoot: true
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Name of the Secret holding the database URLs (or the bundled server's password). */}}
{{- define "orchard.databaseSecretName" -}}
{{- if .Values.postgresql.bundled.enabled }}
{{- default (include "orchard.componentName" (dict "root" . "component" "postgresql")) .Values.postgresql.bundled.existingSecret }}
{{- else }}
{{- required "postgresql.external.existingSecret is required unless postgresql.bundled.enabled" .Values.postgresql.external.existingSecret }}
{{- end }}
{{- end }}

{{/*
A database URL as env entries named $name, for database $database: from the external
Secret's key, or built for the bundled server with the password expanded by Kubernetes
from a secretKeyRef variable (never inlined). Call with
(dict "root" $ "name" "ORCHARD_EVALUATION_DATABASE_URL" "database" "evaluation").
*/}}
{{- define "orchard.databaseEnv" -}}
{{- $pg := .root.Values.postgresql }}
{{- if $pg.bundled.enabled }}
- name: ORCHARD_POSTGRES_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "orchard.databaseSecretName" .root }}
      key: {{ $pg.bundled.passwordKey }}
- name: {{ .name }}
  value: {{ printf "postgresql+psycopg://%s:$(ORCHARD_POSTGRES_PASSWORD)@%s:5432/%s" $pg.bundled.username (include "orchard.componentName" (dict "root" .root "component" "postgresql")) .database | quote }}
{{- else }}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ include "orchard.databaseSecretName" .root }}
      key: {{ index $pg.external.urlKeys .database }}
{{- end }}
{{- end }}

{{/* OpenTelemetry variables shared by the services: (dict "root" $ "component" "gateway"). */}}
{{- define "orchard.otelEnv" -}}
- name: OTEL_SERVICE_NAME
  value: {{ .component }}
{{- if .root.Values.otel.endpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ .root.Values.otel.endpoint | quote }}
{{- end }}
{{- end }}
