package api

// Broker routes: POST /v1/mint-oidc-jwt and POST /v1/mint-aws-creds, both
// authenticated by a broker token derived from a backend session.

// MintRequest is the body of both mint routes: empty (or absent), an
// object so fields can be added later.
type MintRequest struct{}

// MintJWTResponse answers POST /v1/mint-oidc-jwt. Expiration is unix
// seconds.
type MintJWTResponse struct {
	JWT        string `json:"jwt"`
	Wallet     string `json:"wallet"`
	Expiration int64  `json:"expiration"`
}

// MintAWSResponse answers POST /v1/mint-aws-creds. Expiration is unix
// seconds.
type MintAWSResponse struct {
	AccessKeyID     string `json:"access_key_id"`
	SecretAccessKey string `json:"secret_access_key"`
	SessionToken    string `json:"session_token"`
	Expiration      int64  `json:"expiration"`
	Wallet          string `json:"wallet"`
}
