{{/*
Chart name, overridable with .Values.nameOverride. Kubernetes names are limited
to 63 characters (DNS-1123 label).
*/}}
{{- define "medledger.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name used for the resources: fullnameOverride, else <release>-<name>, or
just <release> when the release name already contains the chart name.
*/}}
{{- define "medledger.fullname" -}}
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

{{/*
<chart>-<version> for the helm.sh/chart label ("+" is not allowed in labels).
*/}}
{{- define "medledger.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels that select the pod; must never change for an installed release.
*/}}
{{- define "medledger.selectorLabels" -}}
app.kubernetes.io/name: {{ include "medledger.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels on every resource.
*/}}
{{- define "medledger.labels" -}}
helm.sh/chart: {{ include "medledger.chart" . }}
{{ include "medledger.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | quote }}
app.kubernetes.io/component: dev
app.kubernetes.io/part-of: medledger
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
ServiceAccount name.
*/}}
{{- define "medledger.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "medledger.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Container image reference; the tag defaults to the chart's appVersion.
*/}}
{{- define "medledger.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/*
Name of the headless Service that governs the StatefulSet's pod DNS.
*/}}
{{- define "medledger.headlessServiceName" -}}
{{- printf "%s-headless" (include "medledger.fullname" . | trunc 54 | trimSuffix "-") }}
{{- end }}

{{/*
Address passed to --listen / MEDLEDGER_LISTEN.
*/}}
{{- define "medledger.listen" -}}
{{- printf "0.0.0.0:%d" (int .Values.containerPort) }}
{{- end }}
