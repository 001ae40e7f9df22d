package backend

// Quota defaults (per master; a negative setting means unlimited).
const (
	DefaultMaxAgentDepth               = 16
	DefaultMaxAgentsPerMaster          = 1000
	DefaultMaxCredentialsPerMaster     = 10000
	DefaultMaxPendingRequestsPerMaster = 20
)

// Quotas bound what one master's tree may hold. Zero fields take the
// defaults; negative fields are unlimited.
type Quotas struct {
	MaxDepth           int
	MaxAgents          int
	MaxCredentials     int
	MaxPendingRequests int
}

func (q Quotas) withDefaults() Quotas {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&q.MaxDepth, DefaultMaxAgentDepth)
	def(&q.MaxAgents, DefaultMaxAgentsPerMaster)
	def(&q.MaxCredentials, DefaultMaxCredentialsPerMaster)
	def(&q.MaxPendingRequests, DefaultMaxPendingRequestsPerMaster)
	return q
}
