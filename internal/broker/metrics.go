package broker

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics is the broker's own Prometheus registry (never the global one,
// so tests and several servers in one process do not collide).
type metrics struct {
	reg         *prometheus.Registry
	mints       *prometheus.CounterVec   // endpoint, outcome
	mintSeconds *prometheus.HistogramVec // endpoint
	auditSecs   prometheus.Histogram
	auditErrors prometheus.Counter
	validSecs   prometheus.Histogram
	stsSecs     prometheus.Histogram
	rateLimited *prometheus.CounterVec // endpoint, key
	keyReloads  prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		mints: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentkeys_broker_mints_total",
			Help: "Mint attempts by endpoint and outcome (ok, auth_failed, backend_error, sts_error, bad_request, scope_denied, internal, audit_error).",
		}, []string{"endpoint", "outcome"}),
		mintSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "agentkeys_broker_mint_duration_seconds",
			Help:    "Mint request latency, audit write included.",
			Buckets: []float64{.001, .0025, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"endpoint"}),
		auditSecs: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "agentkeys_broker_audit_append_duration_seconds",
			Help:    "Durable audit append latency (group commit included).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .02, .05, .1, .25, .5, 1, 2},
		}),
		auditErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "agentkeys_broker_audit_errors_total",
			Help: "Audit appends that failed or missed their deadline (the mint was refused).",
		}),
		validSecs: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "agentkeys_broker_session_validate_duration_seconds",
			Help:    "Session validation latency against the backend (cache hits included).",
			Buckets: prometheus.DefBuckets,
		}),
		stsSecs: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "agentkeys_broker_sts_assume_role_duration_seconds",
			Help:    "STS AssumeRole latency.",
			Buckets: prometheus.DefBuckets,
		}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentkeys_broker_rate_limited_total",
			Help: "Mint requests refused with 429, by endpoint and limit (ip, bearer).",
		}, []string{"endpoint", "limit"}),
		keyReloads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "agentkeys_broker_oidc_key_reloads_total",
			Help: "OIDC key set reloads that installed a changed key file.",
		}),
	}
	m.reg.MustRegister(m.mints, m.mintSeconds, m.auditSecs, m.auditErrors, m.validSecs, m.stsSecs, m.rateLimited, m.keyReloads,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}
