// Package ststest is the fake AWS STS for tests (the fake itself lives in
// sts/fakests, which `agentkeys dev --fake-sts` serves too).
package ststest

import "github.com/agentkeys/agentkeys/internal/sts/fakests"

type (
	// Fake is a fake STS endpoint.
	Fake = fakests.Fake
	// AssumeCall is one AssumeRole request as STS received it.
	AssumeCall = fakests.AssumeCall
	// Issued are the credentials the fake handed out.
	Issued = fakests.Issued
)

// New starts a fake STS; close it with Close.
func New() *Fake { return fakests.New() }
