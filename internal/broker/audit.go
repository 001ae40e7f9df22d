package broker

import (
	"context"
	"fmt"
	"time"

	"github.com/agentkeys/agentkeys/internal/audit"
)

// recordAttempt writes the row of a mint about to call an external issuer
// (STS): the credentials it returns exist whether or not the outcome row
// can be written afterwards. A failure refuses the mint before the call.
type recordAttempt func(ctx context.Context, sessionName string, life time.Duration) *failure

func (s *Server) recordAttempt(ctx context.Context, rec audit.Record, sessionName string, life time.Duration) *failure {
	rec.Outcome, rec.Detail = audit.OutcomeAttempt, "calling STS AssumeRole"
	rec.STSSessionName, rec.DurationSeconds = sessionName, int64(life/time.Second)
	if err := s.appendAudit(ctx, rec); err != nil {
		return &failure{outcome: outcomeAudit, unrecorded: fmt.Errorf("recording the attempt before calling STS (STS not called): %w", err)}
	}
	return nil
}

// appendAudit writes rec within the audit deadline, and a client hanging
// up does not cut the write short. A sink that decides its appends
// (audit.SQL: an error means the row was not and will not be written) is
// waited for, so the caller's answer always matches the ledger; any other
// sink is abandoned at the deadline even if it ignores its context.
func (s *Server) appendAudit(ctx context.Context, rec audit.Record) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.AuditTimeout)
	defer cancel()
	start := time.Now()
	var err error
	if d, ok := s.deps.Audit.(audit.Decider); ok && d.DecidesAppends() {
		err = s.deps.Audit.Append(ctx, rec)
	} else {
		done := make(chan error, 1)
		go func() { done <- s.deps.Audit.Append(ctx, rec) }()
		select {
		case err = <-done:
		case <-ctx.Done():
			err = fmt.Errorf("audit deadline of %v exceeded: %w", s.cfg.AuditTimeout, ctx.Err())
		}
	}
	s.m.auditSecs.Observe(time.Since(start).Seconds())
	return err
}
