{{/* The alert rules, shared by the PrometheusRule and deploy/prometheus/kratos-hooks-rules.yml
(rendered from this chart with matchNamespace: false; tests/ops/chart.py). Every rule's
runbook annotation points at its section of RUNBOOK.md. Thresholds: prometheusRule.thresholds. */}}
{{- define "kratos-hooks.alertGroups" -}}
{{- $s := include "kratos-hooks.alertSelector" . -}}
{{- $by := include "kratos-hooks.alertBy" . -}}
{{- $t := .Values.prometheusRule.thresholds -}}
{{- $off := .Values.prometheusRule.disabled -}}
{{- $runbook := .Values.prometheusRule.runbookUrl -}}
- name: kratos-hooks.availability
  rules:
    {{- if not (has "KratosHooksDown" $off) }}
    - alert: KratosHooksDown
      expr: up{ {{- $s -}} } == 0
      for: 2m
      labels: {severity: critical}
      annotations:
        summary: {{ `kratos-hooks {{ $labels.instance }} does not answer scrapes` | quote }}
        description: {{ `Prometheus cannot scrape /metrics on {{ $labels.instance }}: the process is down, hung, or its internal port is unreachable. Logins through this replica fail.` | quote }}
        runbook: {{ $runbook }}#kratoshooksdown
    {{- end }}
    {{- if not (has "KratosHooksAbsent" $off) }}
    - alert: KratosHooksAbsent
      expr: absent(up{ {{- $s -}} })
      for: 5m
      labels: {severity: critical}
      annotations:
        summary: "No kratos-hooks target is scraped at all"
        description: "Prometheus has no kratos-hooks target (no pod, or the ServiceMonitor / scrape config no longer finds them)."
        runbook: {{ $runbook }}#kratoshooksabsent
    {{- end }}
    {{- if not (has "KratosHooksNotReady" $off) }}
    - alert: KratosHooksNotReady
      # kube-state-metrics' series: a pod that stays unready is out of its Services.
      expr: >-
        sum by (namespace, pod) (kube_pod_status_ready{condition="false",
        {{- if .Values.prometheusRule.matchNamespace }}namespace="{{ .Release.Namespace }}",{{ end -}}
        pod=~"{{ include "kratos-hooks.fullname" . }}-[a-z0-9]+-[a-z0-9]{5}"}) > 0
      for: 10m
      labels: {severity: warning}
      annotations:
        summary: {{ `kratos-hooks pod {{ $labels.pod }} has not been ready for 10 minutes` | quote }}
        description: "/health/ready keeps failing (503 while draining or before the listeners are up), so the pod gets no traffic."
        runbook: {{ $runbook }}#kratoshooksnotready
    {{- end }}
- name: kratos-hooks.kratos
  rules:
    {{- if not (has "KratosHooksKratosUnreachable" $off) }}
    - alert: KratosHooksKratosUnreachable
      expr: >-
        (
          sum by ({{ $by }}) (rate(kratos_hooks_http_requests_total{ {{- $s -}},listener="public",status=~"502|504"}[5m]))
          / sum by ({{ $by }}) (rate(kratos_hooks_http_requests_total{ {{- $s -}},listener="public"}[5m]))
        ) > {{ $t.kratosErrorRatio }}
        or
        (
          sum by ({{ $by }}) (rate(kratos_hooks_decisions_total{ {{- $s -}},result="unavailable"}[5m]))
          / sum by ({{ $by }}) (rate(kratos_hooks_decisions_total{ {{- $s -}} }[5m]))
        ) > {{ $t.kratosErrorRatio }}
      for: 2m
      labels: {severity: critical}
      annotations:
        summary: "Kratos is unreachable from kratos-hooks"
        description: {{ `{{ $value | humanizePercentage }} of public answers are 502/504 (Kratos unreachable or silent), or of decisions are 503 (whoami failing). Sign-in and every protected app are down.` | quote }}
        runbook: {{ $runbook }}#kratoshookskratosunreachable
    {{- end }}
- name: kratos-hooks.login-guard
  rules:
    {{- if not (has "KratosHooksLoginFailuresHigh" $off) }}
    - alert: KratosHooksLoginFailuresHigh
      # The seed guide's HighAuthFailureRate, on the guard's own outcome count.
      expr: >-
        sum by ({{ $by }}) (rate(kratos_hooks_backoff_attempts_total{ {{- $s -}},outcome="failure"}[5m])) * 60
        > {{ $t.loginFailuresPerMinute }}
      for: 5m
      labels: {severity: warning}
      annotations:
        summary: {{ `{{ $value | humanize }} failed password logins per minute` | quote }}
        description: "Kratos is rejecting many passwords at once; credential stuffing or password spraying looks like this."
        runbook: {{ $runbook }}#kratoshooksloginfailureshigh
    {{- end }}
    {{- if not (has "KratosHooksLoginBlocksHigh" $off) }}
    - alert: KratosHooksLoginBlocksHigh
      expr: >-
        sum by ({{ $by }}) (rate(kratos_hooks_backoff_blocks_total{ {{- $s -}} }[5m])) * 60
        > {{ $t.blocksPerMinute }}
      for: 5m
      labels: {severity: warning}
      annotations:
        summary: {{ `{{ $value | humanize }} submissions per minute held by the backoff or a window` | quote }}
        description: "The guard is refusing many submissions without asking Kratos (bucket label on kratos_hooks_backoff_blocks_total says which); an attack, or a NAT that holds many users behind one address."
        runbook: {{ $runbook }}#kratoshooksloginblockshigh
    {{- end }}
- name: kratos-hooks.dependencies
  rules:
    {{- if not (has "KratosHooksRedisErrors" $off) }}
    - alert: KratosHooksRedisErrors
      expr: >-
        sum by ({{ $by }}) (rate(kratos_hooks_backoff_store_errors_total{ {{- $s -}} }[5m])) > 0
        or sum by ({{ $by }}) (rate(kratos_hooks_decisions_redis_errors_total{ {{- $s -}} }[5m])) > 0
        or sum by ({{ $by }}) (rate(kratos_hooks_reservation_errors_total{ {{- $s -}} }[5m])) > 0
      for: 2m
      labels: {severity: warning}
      annotations:
        summary: "kratos-hooks cannot reach Redis"
        description: "The login guard runs on its in-process limiter (or answers 503 with BACKOFF_FAIL_CLOSED), decisions ask Kratos directly, welcome events rely on the outbox's key alone."
        runbook: {{ $runbook }}#kratoshooksrediserrors
    {{- end }}
    {{- if not (has "KratosHooksOutboxErrors" $off) }}
    - alert: KratosHooksOutboxErrors
      expr: >-
        sum by ({{ $by }}, backend) (rate(kratos_hooks_outbox_errors_total{ {{- $s -}} }[5m])) > 0
      for: 5m
      labels: {severity: warning}
      annotations:
        summary: {{ `The {{ $labels.backend }} outbox is failing` | quote }}
        description: {{ `backend=postgres: the outbox database is unreachable and entries go to the pod's local spool; backend=spool: the spool cannot be written either and the verification hook answers 503.` | quote }}
        runbook: {{ $runbook }}#kratoshooksoutboxerrors
    {{- end }}
    {{- if not (has "KratosHooksResolverUnavailable" $off) }}
    - alert: KratosHooksResolverUnavailable
      expr: >-
        sum by ({{ $by }}, resolver) (rate(kratos_hooks_identity_resolutions_total{ {{- $s -}},result=~"unavailable|error"}[5m])) > 0
      for: 10m
      labels: {severity: warning}
      annotations:
        summary: {{ `The {{ $labels.resolver }} identity resolver is failing` | quote }}
        description: "The platform database or API cannot resolve identities; metadata_public writes are recorded in the outbox and retried (or logins interrupted, with the interrupt policy)."
        runbook: {{ $runbook }}#kratoshooksresolverunavailable
    {{- end }}
    {{- if not (has "KratosHooksBreakerOpen" $off) }}
    - alert: KratosHooksBreakerOpen
      expr: max by ({{ $by }}, name) (kratos_hooks_breaker_state{ {{- $s -}} }) == 2
      for: 2m
      labels: {severity: warning}
      annotations:
        summary: {{ `The {{ $labels.name }} circuit breaker is open` | quote }}
        description: "Calls to this dependency are not made until a probe succeeds (HOOKS_BREAKER_COOLDOWN); identity metadata waits in the outbox."
        runbook: {{ $runbook }}#kratoshooksbreakeropen
    {{- end }}
    {{- if not (has "KratosHooksBrokerUnavailable" $off) }}
    - alert: KratosHooksBrokerUnavailable
      expr: >-
        sum by ({{ $by }}) (increase(kratos_hooks_welcome_events_total{ {{- $s -}},result="outboxed"}[10m])) > 0
      for: 5m
      labels: {severity: warning}
      annotations:
        summary: "Welcome events are not reaching RabbitMQ"
        description: {{ `{{ $value | humanize }} welcome events in 10 minutes could not be published and wait in the outbox; the relay delivers them when the broker is back.` | quote }}
        runbook: {{ $runbook }}#kratoshooksbrokerunavailable
    {{- end }}
    {{- if not (has "KratosHooksEventsUnconfirmed" $off) }}
    - alert: KratosHooksEventsUnconfirmed
      expr: >-
        sum by ({{ $by }}, result) (rate(kratos_hooks_outbox_publish_total{ {{- $s -}},result!="confirmed"}[5m])) > 0
      for: 10m
      labels: {severity: warning}
      annotations:
        summary: {{ `Event publishes keep ending {{ $labels.result }}` | quote }}
        description: "For 10 minutes publishes of welcome and token events have not been confirmed by RabbitMQ: unsent = no connection, unknown = the connection was lost or silent before the confirm (published again after a reconnect), nacked = the broker refused them (a queue limit or policy). The events wait in the outbox."
        runbook: {{ $runbook }}#kratoshookseventsunconfirmed
    {{- end }}
    {{- if not (has "KratosHooksRedisFailover" $off) }}
    - alert: KratosHooksRedisFailover
      expr: >-
        sum by ({{ $by }}) (increase(kratos_hooks_redis_master_changes_total{ {{- $s -}} }[15m])) > 0
      labels: {severity: info}
      annotations:
        summary: "kratos-hooks followed a Redis Sentinel failover"
        description: "The sentinels named another Redis master in the last 15 minutes and the service moved to it. Login counters written to the old master after its last replication are lost (a caller may get a few more attempts); nothing else is. Resolves 15 minutes after the last failover."
        runbook: {{ $runbook }}#kratoshooksredisfailover
    {{- end }}
- name: kratos-hooks.hooks
  rules:
    {{- if not (has "KratosHooksOutboxStale" $off) }}
    - alert: KratosHooksOutboxStale
      expr: max by ({{ $by }}) (kratos_hooks_outbox_oldest_age_seconds{ {{- $s -}} }) > {{ $t.outboxAgeSeconds }}
      for: 5m
      labels: {severity: warning}
      annotations:
        summary: {{ `The oldest outbox entry is {{ $value | humanizeDuration }} old` | quote }}
        description: "Events or identity repairs are not being delivered; the relay is waiting for the broker, Kratos' Admin API or the platform."
        runbook: {{ $runbook }}#kratoshooksoutboxstale
    {{- end }}
    {{- if not (has "KratosHooksHooksRejected" $off) }}
    - alert: KratosHooksHooksRejected
      expr: >-
        sum by ({{ $by }}, hook, outcome) (rate(kratos_hooks_hook_requests_total{ {{- $s -}},outcome=~"unauthorized|not_configured|unavailable|error"}[5m])) > 0
      for: 5m
      labels: {severity: warning}
      annotations:
        summary: {{ `Kratos' {{ $labels.hook }} hook calls are answered {{ $labels.outcome }}` | quote }}
        description: "unauthorized / not_configured = Kratos' web_hook key and HOOKS_API_KEYS disagree (or none is set); unavailable = the event could not be recorded anywhere; error = a bug (see the logs)."
        runbook: {{ $runbook }}#kratoshookshooksrejected
    {{- end }}
- name: kratos-hooks.decisions
  rules:
    {{- if not (has "KratosHooksDecisionsSlow" $off) }}
    - alert: KratosHooksDecisionsSlow
      expr: >-
        histogram_quantile(0.99, sum by ({{ $by }}, le) (rate(kratos_hooks_http_request_duration_seconds_bucket{ {{- $s -}},listener="internal",route="decisions"}[5m])))
        > {{ $t.decisionP99Seconds }}
      for: 10m
      labels: {severity: warning}
      annotations:
        summary: {{ `Decisions' p99 is {{ $value | humanizeDuration }}` | quote }}
        description: "Every request to a protected app waits for this answer; usually Kratos' whoami is slow or the session cache misses."
        runbook: {{ $runbook }}#kratoshooksdecisionsslow
    {{- end }}
    {{- if not (has "KratosHooksRulesRejected" $off) }}
    - alert: KratosHooksRulesRejected
      # The error series is created by the first rejection, so increase() alone misses that
      # one: a series that did not exist 15 minutes ago counts too.
      expr: >-
        sum by ({{ $by }}) (increase(kratos_hooks_decisions_rule_reloads_total{ {{- $s -}},result="error"}[15m])) > 0
        or sum by ({{ $by }}) (kratos_hooks_decisions_rule_reloads_total{ {{- $s -}},result="error"}
        unless kratos_hooks_decisions_rule_reloads_total{ {{- $s -}},result="error"} offset 15m)
      labels: {severity: warning}
      annotations:
        summary: "A new access-rules file was rejected"
        description: "The previous rules are still in force; the change you deployed is not. Resolves 15 minutes after the last rejection."
        runbook: {{ $runbook }}#kratoshooksrulesrejected
    {{- end }}
- name: kratos-hooks.tokens
  rules:
    {{- if not (has "KratosHooksTokenStoreUnavailable" $off) }}
    - alert: KratosHooksTokenStoreUnavailable
      expr: >-
        sum by ({{ $by }}, backend) (rate(kratos_hooks_tokens_store_errors_total{ {{- $s -}} }[5m])) > 0
      for: 2m
      labels: {severity: critical}
      annotations:
        summary: {{ `The {{ $labels.backend }} token store is failing` | quote }}
        description: "Tokens that are not in the caches cannot be checked: token rules answer 503 for them (fail closed), issuing and revoking fail. Cached tokens keep working until their cache entry expires (TOKENS_CACHE_TTL)."
        runbook: {{ $runbook }}#kratoshookstokenstoreunavailable
    {{- end }}
    {{- if not (has "KratosHooksTokenGuessing" $off) }}
    - alert: KratosHooksTokenGuessing
      expr: >-
        sum by ({{ $by }}) (rate(kratos_hooks_tokens_verifications_total{ {{- $s -}},result=~"malformed|unknown"}[5m])) * 60 > {{ $t.tokenFailuresPerMinute }}
      for: 10m
      labels: {severity: warning}
      annotations:
        summary: {{ `{{ $value | humanize }} malformed or unknown tokens presented per minute` | quote }}
        description: "Callers keep presenting tokens that fail the checksum or are not in the store: someone guessing tokens, or a client configured with a deleted one."
        runbook: {{ $runbook }}#kratoshookstokenguessing
    {{- end }}
    {{- if not (has "KratosHooksTokenLeaked" $off) }}
    - alert: KratosHooksTokenLeaked
      # The revoked series is created by the first report, so increase() alone misses that
      # one: a series that did not exist 30 minutes ago counts too.
      expr: >-
        sum by ({{ $by }}) (increase(kratos_hooks_tokens_leak_reports_total{ {{- $s -}},result="revoked"}[30m])) > 0
        or sum by ({{ $by }}) (kratos_hooks_tokens_leak_reports_total{ {{- $s -}},result="revoked"}
        unless kratos_hooks_tokens_leak_reports_total{ {{- $s -}},result="revoked"} offset 30m)
      labels: {severity: warning}
      annotations:
        summary: "A leak report revoked an active token"
        description: "A secret-scanning service reported a live token as public; it was revoked at once and its owner told (TOKEN_LEAKED). Whatever used it now gets 401. Resolves 30 minutes after the last such report."
        runbook: {{ $runbook }}#kratoshookstokenleaked
    {{- end }}
{{- end -}}
