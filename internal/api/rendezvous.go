package api

// RendezvousRegisterRequest is the body of POST /rendezvous/register (the
// bearer is the auth request's await token).
type RendezvousRegisterRequest struct {
	DaemonPubkey string `json:"daemon_pubkey"`
	PairCode     string `json:"pair_code"`
}

// Validate requires both fields.
func (r RendezvousRegisterRequest) Validate() error {
	return required("daemon_pubkey and pair_code required", r.DaemonPubkey, r.PairCode)
}

// RendezvousRegisterResponse answers POST /rendezvous/register.
type RendezvousRegisterResponse struct {
	RegistrationToken string `json:"registration_token"`
	ExpiresAt         int64  `json:"expires_at"`
}

// RendezvousPollResponse answers GET /rendezvous/poll: status "delivered"
// with the base64 payload, or "timeout" with payload null.
type RendezvousPollResponse struct {
	Payload *string `json:"payload"`
	Status  string  `json:"status"`
}

// RendezvousDeliverRequest is the body of POST /rendezvous/deliver.
type RendezvousDeliverRequest struct {
	PairCode string `json:"pair_code"`
	Payload  string `json:"payload"`
}

// Validate requires both fields.
func (r RendezvousDeliverRequest) Validate() error {
	return required("pair_code and payload required", r.PairCode, r.Payload)
}
