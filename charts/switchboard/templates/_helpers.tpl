{{/* Names and labels shared by every template. */}}
{{- define "switchboard.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "switchboard.labels" -}}
app.kubernetes.io/name: switchboard-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: switchboard
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "switchboard.selectorLabels" -}}
app.kubernetes.io/name: switchboard-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "switchboard.serviceAccountName" -}}
{{- default (include "switchboard.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "switchboard.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "switchboard.routerImage" -}}
{{- printf "%s:%s" .Values.routerImage.repository (default .Chart.AppVersion .Values.routerImage.tag) -}}
{{- end -}}

{{/* true when the PrometheusRule and ServiceMonitor are rendered */}}
{{- define "switchboard.monitoring" -}}
{{- if eq (toString .Values.monitoring.enabled) "true" -}}true
{{- else if eq (toString .Values.monitoring.enabled) "false" -}}
{{- else if .Capabilities.APIVersions.Has "monitoring.coreos.com/v1" -}}true
{{- end -}}
{{- end -}}

{{/* The operator's permissions (docs/operator.md; proven by e2e/tests/test_operator.py). */}}
{{- define "switchboard.rules" -}}
- apiGroups: [switchboard.dev]
  resources: [routerconfigs, agents]
  verbs: [get, list, watch]
- apiGroups: [switchboard.dev]
  resources: [routerconfigs/status, agents/status]
  verbs: [patch]
- apiGroups: [""]
  resources: [configmaps, services]
  verbs: [get, list, watch, create, patch]
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch, create, patch]
- apiGroups: [apps]
  resources: [statefulsets]
  verbs: [get, list, watch, create, patch]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [delete]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, list, watch, create, patch]
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch, delete]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end -}}
