{{/* Names, labels and image references shared by the templates. */}}

{{- define "keepvip.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "keepvip.fullname" -}}
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

{{- define "keepvip.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "keepvip.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "keepvip.selectorLabels" -}}
app.kubernetes.io/name: {{ include "keepvip.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "keepvip.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "keepvip.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name: required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository:tag, or repository@digest when a digest is given. */}}
{{- define "keepvip.imageRef" -}}
{{- if .digest }}
{{- printf "%s@%s" .repository .digest }}
{{- else }}
{{- printf "%s:%s" .repository .tag }}
{{- end }}
{{- end }}

{{- define "keepvip.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- include "keepvip.imageRef" (dict "repository" .Values.image.repository "tag" $tag "digest" .Values.image.digest) }}
{{- end }}

{{- define "keepvip.agentImage" -}}
{{- $a := .Values.agents.image }}
{{- if $a.repository }}
{{- include "keepvip.imageRef" (dict "repository" $a.repository "tag" (default .Chart.AppVersion $a.tag) "digest" $a.digest) }}
{{- else }}
{{- include "keepvip.image" . }}
{{- end }}
{{- end }}

{{- define "keepvip.agentPriorityClassName" -}}
{{- $pc := .Values.agents.priorityClass }}
{{- if $pc.create }}
{{- default (printf "%s-agent" (include "keepvip.fullname" .)) $pc.name }}
{{- else }}
{{- $pc.name }}
{{- end }}
{{- end }}

{{/* A map as the operator's k=v,k2=v2 list, in key order. */}}
{{- define "keepvip.kvlist" -}}
{{- $out := list }}
{{- range $k, $v := . }}
{{- $out = append $out (printf "%s=%s" $k $v) }}
{{- end }}
{{- join "," $out }}
{{- end }}

{{/* The operator's leader-election Lease (in the release namespace). */}}
{{- define "keepvip.leaseName" -}}
{{- default (printf "%s-operator" (include "keepvip.fullname" .)) .Values.operator.leaderElection.leaseName }}
{{- end }}

{{/* Names of imagePullSecrets entries, comma separated (the operator's list form). */}}
{{- define "keepvip.secretNames" -}}
{{- $out := list }}
{{- range . }}{{ $out = append $out .name }}{{ end }}
{{- join "," $out }}
{{- end }}
