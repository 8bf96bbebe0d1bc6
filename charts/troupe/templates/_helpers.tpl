{{- define "troupe.name" -}}troupe{{- end -}}

{{- define "troupe.fullname" -}}
{{- if contains "troupe" .Release.Name -}}{{ .Release.Name | trunc 63 | trimSuffix "-" }}{{- else -}}{{ printf "%s-troupe" .Release.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "troupe.labels" -}}
app.kubernetes.io/name: troupe
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "troupe.selectorLabels" -}}
app.kubernetes.io/name: troupe
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "troupe.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}{{ default (include "troupe.fullname" .) .Values.serviceAccount.name }}{{- else -}}{{ required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}{{- end -}}
{{- end -}}

{{- define "troupe.workerRole" -}}{{ include "troupe.fullname" . }}-worker{{- end -}}

{{- define "troupe.leaderLease" -}}{{ required "operator.leaderElectionLease must name the leader-election Lease" .Values.operator.leaderElectionLease }}{{- end -}}

{{- /* An image reference: repository@digest when a digest is set (the tag is then ignored),
       else repository:tag with the chart's appVersion as the default tag. */ -}}
{{- define "troupe.image" -}}
{{- $img := index . 0 -}}{{- $root := index . 1 -}}
{{- if $img.digest -}}
{{- if not (regexMatch "^sha256:[0-9a-f]{64}$" $img.digest) -}}{{- fail (printf "image digest %q must be sha256: and 64 hex digits" $img.digest) -}}{{- end -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $img.repository ($img.tag | default $root.Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{- define "troupe.operatorImage" -}}{{ include "troupe.image" (list .Values.image .) }}{{- end -}}
{{- define "troupe.workerImage" -}}{{ include "troupe.image" (list .Values.workers.image .) }}{{- end -}}
