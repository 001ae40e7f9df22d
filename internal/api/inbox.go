package api

import (
	"github.com/agentkeys/agentkeys/internal/agentkeys"
)

// Mock inbox routes (development backends only).

// InboxProvisionRequest is the body of POST /mock/inbox/provision.
type InboxProvisionRequest = AgentRequest

// InboxProvisionResponse answers POST /mock/inbox/provision.
type InboxProvisionResponse struct {
	Address     string           `json:"address"`
	AgentWallet agentkeys.Wallet `json:"agent_wallet"`
}

// InboxMessage is one element of GET /mock/inbox/messages (a JSON array).
type InboxMessage struct {
	MsgID      string `json:"msg_id"`
	From       string `json:"from"`
	Subject    string `json:"subject"`
	Body       string `json:"body"`
	ReceivedAt int64  `json:"received_at"`
}

// DeliverMailRequest is the body of POST /mock/inbox/deliver. Body keeps
// its CRLF line ends (text:"raw" lets the text check pass them).
type DeliverMailRequest struct {
	Address string `json:"address"`
	From    string `json:"from"`
	Subject string `json:"subject"`
	Body    string `json:"body" text:"raw"`
}

// Validate requires the address and the sender.
func (r DeliverMailRequest) Validate() error {
	if err := required("address required", r.Address); err != nil {
		return err
	}
	return required("from required", r.From)
}

// DeliverMailResponse answers POST /mock/inbox/deliver.
type DeliverMailResponse struct {
	MsgID string `json:"msg_id"`
}
