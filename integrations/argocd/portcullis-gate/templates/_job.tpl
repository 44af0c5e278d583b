{{/*
portcullis-gate.job renders the PreSync hook Job. Include it from one template of your chart:

  {{ include "portcullis-gate.job" . }}

and set `portcullisGate.*` values (see this chart's values.yaml).
*/}}
{{- define "portcullis-gate.job" -}}
{{- $g := .Values.portcullisGate -}}
{{- if $g.enabled }}
{{- $deadline := $g.check.deadline | default "15m" }}
{{- if contains "HookFailed" $g.hook.deletePolicy }}
{{- fail "portcullisGate.hook.deletePolicy must not contain HookFailed: a failed gate must keep its logs" }}
{{- end }}
apiVersion: batch/v1
kind: Job
metadata:
  generateName: {{ printf "%s-gate-" (.Release.Name | replace "_" "-" | trunc 28 | trimSuffix "-") }}
  labels:
    app.kubernetes.io/name: portcullis-gate
    app.kubernetes.io/instance: {{ .Release.Name | replace "_" "-" | trunc 63 | trimSuffix "-" | quote }}
  annotations:
    argocd.argoproj.io/hook: PreSync
    argocd.argoproj.io/hook-delete-policy: {{ $g.hook.deletePolicy | quote }}
    argocd.argoproj.io/sync-wave: {{ $g.hook.syncWave | quote }}
spec:
  backoffLimit: 0
  activeDeadlineSeconds: {{ $g.job.activeDeadlineSeconds }}
  {{- with $g.job.ttlSecondsAfterFinished }}
  ttlSecondsAfterFinished: {{ . }}
  {{- end }}
  {{- if $g.job.podFailurePolicy }}
  podFailurePolicy:
    rules:
      - action: Ignore
        onPodConditions:
          - type: DisruptionTarget
            status: "True"
      - action: FailJob
        onExitCodes:
          containerName: gate
          operator: In
          values: [1, 2, 3, 4, 5, 143]
  {{- end }}
  template:
    metadata:
      annotations:
        sidecar.istio.io/inject: "false"
        {{- with $g.job.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: {{ $g.job.terminationGracePeriodSeconds }}
      automountServiceAccountToken: false
      {{- with $g.job.serviceAccountName }}
      serviceAccountName: {{ . }}
      {{- end }}
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        runAsGroup: 65532
        seccompProfile:
          type: RuntimeDefault
      containers:
        - name: gate
          image: {{ printf "%s@%s" $g.image.repository (required "portcullisGate.image.digest: pin the gate image by digest" $g.image.digest) | quote }}
          args:
            - check
            - --application={{ $g.check.application | default .Release.Name }}
            - --environment={{ required "portcullisGate.check.environment" $g.check.environment }}
            - --repository={{ required "portcullisGate.check.repository: pass $ARGOCD_APP_SOURCE_REPO_URL as a helm parameter" $g.check.repository }}
            - --revision={{ required "portcullisGate.check.revision: pass $ARGOCD_APP_REVISION as a helm parameter (forceString: true)" $g.check.revision }}
            {{- with $g.check.project }}
            - --project={{ . }}
            {{- end }}
            {{- range $g.check.images }}
            - --image={{ . }}
            {{- end }}
            {{- range $g.check.jiraKeys }}
            - --jira={{ . }}
            {{- end }}
            {{- range $g.check.changes }}
            - --change={{ . }}
            {{- end }}
            - --caller=argocd
            - --deadline={{ $deadline }}
          env:
            - name: PORTCULLIS_SERVER
              value: {{ $g.server.address | quote }}
            - name: PORTCULLIS_TOKEN_FILE
              value: /var/run/portcullis/token
            - name: PORTCULLIS_ATTEMPT_ID
              valueFrom:
                fieldRef:
                  fieldPath: metadata.labels['batch.kubernetes.io/job-name']
          terminationMessagePolicy: FallbackToLogsOnError
          resources:
            {{- toYaml $g.job.resources | nindent 12 }}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities:
              drop: [ALL]
          volumeMounts:
            - name: token
              mountPath: /var/run/portcullis
              readOnly: true
      volumes:
        - name: token
          secret:
            secretName: {{ $g.server.tokenSecret }}
            items:
              - key: {{ $g.server.tokenSecretKey }}
                path: token
{{- end }}
{{- end -}}
