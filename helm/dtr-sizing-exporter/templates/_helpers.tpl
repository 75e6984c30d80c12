{{/* Names and labels, in the usual Helm shape. */}}
{{- define "dtr-sizing-exporter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "dtr-sizing-exporter.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "dtr-sizing-exporter.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "dtr-sizing-exporter.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "dtr-sizing-exporter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dtr-sizing-exporter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "dtr-sizing-exporter.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "dtr-sizing-exporter.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: metrics
{{- end }}

{{- define "dtr-sizing-exporter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "dtr-sizing-exporter.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* registry/repository:tag, or @digest when one is given. */}}
{{- define "dtr-sizing-exporter.image" -}}
{{- $repo := .Values.image.repository }}
{{- if .Values.image.registry }}{{ $repo = printf "%s/%s" .Values.image.registry $repo }}{{ end }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repo .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repo (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "dtr-sizing-exporter.externalStorage" -}}
{{- if ne .Values.storage.driver "filesystem" }}true{{ end }}
{{- end }}

{{/* The exporter's flags; tests run the exporter's own parser over them. */}}
{{- define "dtr-sizing-exporter.args" -}}
- --web.listen-address=:{{ .Values.port }}
- --path.procfs=/host/proc
- --path.sysfs=/host/sys
- --path.rootfs=/host/root
- --docker.data-root={{ .Values.host.dockerDataRoot }}
- --config.file=/etc/dtr-sizing-exporter/config.yaml
- --storage.state-dir=/var/lib/dtr-sizing-exporter
- --log.level={{ .Values.log.level }}
- --log.format={{ .Values.log.format }}
{{- if include "dtr-sizing-exporter.externalStorage" . }}
- --no-collector.storage
- --no-collector.pagecache
{{- else }}
{{- with .Values.storage.hostPath }}
- --storage.path=/host/root{{ . }}
{{- end }}
{{- if .Values.storage.scanRate }}
- --storage.scan-rate={{ .Values.storage.scanRate }}
{{- end }}
- --storage.scan-concurrency={{ .Values.storage.scanConcurrency }}
{{- end }}
{{- if .Values.docker.socket.enabled }}
- --docker.host=unix:///var/run/docker.sock
{{- else }}
- --no-collector.docker
{{- end }}
{{- if .Values.dtr.url }}
- --dtr.url={{ .Values.dtr.url }}
{{- with .Values.dtr.username }}
- --dtr.username={{ . }}
{{- end }}
{{- if .Values.dtr.existingSecret }}
- --dtr.password-file=/var/run/secrets/dtr/password
{{- if .Values.dtr.caKey }}
- --dtr.ca-file=/var/run/secrets/dtr/ca.crt
{{- end }}
{{- end }}
{{- end }}
{{- range .Values.extraArgs }}
- {{ . }}
{{- end }}
{{- end }}
