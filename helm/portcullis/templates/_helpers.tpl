{{/* Chart name, truncated to the 63 characters Kubernetes names allow. */}}
{{- define "portcullis.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full resource name: release name plus chart name unless the release already contains it. */}}
{{- define "portcullis.fullname" -}}
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

{{- define "portcullis.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "portcullis.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "portcullis.selectorLabels" -}}
app.kubernetes.io/name: {{ include "portcullis.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "portcullis.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "portcullis.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image, pinned by digest when one is given. */}}
{{- define "portcullis.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Several replicas on one SQLite file would each keep their own decisions. */}}
{{- define "portcullis.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.store.urlSecret.name) (hasPrefix "sqlite" .Values.store.url) }}
{{- fail "replicaCount > 1 needs a PostgreSQL store: set store.urlSecret (see values-ha.yaml)" }}
{{- end }}
{{- if and .Values.admission.webhook.enabled (not .Values.admission.webhook.clientCA.secretName) (not (include "portcullis.admissionToken" .)) }}
{{- fail "admission.webhook.enabled: the webhook answers only the Kubernetes API server, which authenticates with its admission kubeconfig: set admission.webhook.clientCA.secretName (the CA of its client certificate) or add an auth.tokens entry with roles [admission] (its token); see integrations/kubernetes/README.md" }}
{{- end }}
{{- if and (include "portcullis.sqlite" .) (not .Values.persistence.enabled) (not .Values.persistence.ephemeral) }}
{{- fail "the SQLite store without persistence loses every decision and pending review when the pod restarts: keep persistence.enabled=true (a PVC), use PostgreSQL (store.urlSecret), or set persistence.ephemeral=true for a demo" }}
{{- end }}
{{- end }}

{{/* Non-empty when the store is the embedded SQLite file (no Secret URL, a sqlite: URL). */}}
{{- define "portcullis.sqlite" -}}
{{- if and (not .Values.store.urlSecret.name) (hasPrefix "sqlite" .Values.store.url) }}true{{- end }}
{{- end }}

{{/* The probes' scheme: HTTPS when the service serves TLS. */}}
{{- define "portcullis.probeScheme" -}}
{{- if .Values.tls.secretName }}HTTPS{{- else }}HTTP{{- end }}
{{- end }}

{{/* Non-empty when an `auth.tokens` entry holds the `admission` role (the API server's token). */}}
{{- define "portcullis.admissionToken" -}}
{{- range .Values.auth.tokens }}{{ if has "admission" (.roles | default list) }}true{{ end }}{{ end }}
{{- end }}
