package backend

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/store"
)

// countingStore counts transactions and the reads a waiting opener could
// make, outside and inside transactions.
type countingStore struct {
	store.Store
	txs, requestReads, slotReads, epochReads atomic.Int64
}

func (c *countingStore) Tx(ctx context.Context, fn func(store.Queries) error) error {
	c.txs.Add(1)
	return c.Store.Tx(ctx, func(q store.Queries) error { return fn(countingQueries{q, c}) })
}

func (c *countingStore) AuthRequest(ctx context.Context, id string) (store.AuthRequest, error) {
	c.requestReads.Add(1)
	return c.Store.AuthRequest(ctx, id)
}

func (c *countingStore) RendezvousByToken(ctx context.Context, h agentkeys.TokenHash) (store.Rendezvous, error) {
	c.slotReads.Add(1)
	return c.Store.RendezvousByToken(ctx, h)
}

func (c *countingStore) PairingEpoch(ctx context.Context) (int64, error) {
	c.epochReads.Add(1)
	return c.Store.PairingEpoch(ctx)
}

type countingQueries struct {
	store.Queries
	c *countingStore
}

func (q countingQueries) AuthRequest(ctx context.Context, id string) (store.AuthRequest, error) {
	q.c.requestReads.Add(1)
	return q.Queries.AuthRequest(ctx, id)
}

// 200 openers awaiting their decision (150 on await, 50 on rendezvous poll)
// cost the database no transaction and no read of their own while nothing
// happens: one shared poller reads the pairing epoch a few times a second.
// A decision is still delivered at once, and collected in the one
// transaction.
func TestAwaitersDoNotBusyTheDatabase(t *testing.T) {
	var cs *countingStore
	e := newEnv(t, func(o *Options) {
		cs = &countingStore{Store: o.Store}
		o.Store = cs
		o.Frontdoor.MaxAwaitersPerIP = -1
	})
	alice := e.master("alice")
	const n, slots = 150, 50
	reqs := make([]opened, n+slots)
	for i := range reqs {
		reqs[i] = e.open(pairReq("x"), "")
	}
	regs := make([]string, slots)
	for i := range regs {
		o := reqs[n+i]
		status, b, _ := e.raw("POST", "/rendezvous/register", agentkeys.Token(o.AwaitToken), fmt.Sprintf(`{"daemon_pubkey":"AQID","pair_code":%q}`, o.PairCode))
		if status != 200 {
			t.Fatalf("register → %d %v", status, b)
		}
		regs[i] = b["registration_token"].(string)
	}
	waitCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	type answer struct {
		i      int
		status int
		body   map[string]any
	}
	answers := make(chan answer, n+slots)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for i, tok := range regs {
		wg.Go(func() {
			status, body := getCtx(waitCtx, e.http.URL+"/rendezvous/poll", tok)
			answers <- answer{n + i, status, body}
		})
	}
	for i, o := range reqs[:n] {
		wg.Go(func() {
			status, body := getCtx(waitCtx, e.http.URL+"/auth-request/await?request_id="+o.ID, o.AwaitToken)
			answers <- answer{i, status, body}
		})
	}
	// Every awaiter has joined and made its first read.
	deadline := time.Now().Add(30 * time.Second)
	for cs.requestReads.Load() < n || cs.slotReads.Load() < slots || e.srv.pairings.watcherCount() < n+slots {
		if time.Now().After(deadline) {
			t.Fatalf("%d awaiters joined, %d+%d reads", e.srv.pairings.watcherCount(), cs.requestReads.Load(), cs.slotReads.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	tx0, rd0, ep0 := cs.txs.Load(), cs.requestReads.Load()+cs.slotReads.Load(), cs.epochReads.Load()
	const window = time.Second
	time.Sleep(window) // the measurement window: nothing should happen in it
	tx, rd, ep := cs.txs.Load()-tx0, cs.requestReads.Load()+cs.slotReads.Load()-rd0, cs.epochReads.Load()-ep0
	if tx != 0 || rd != 0 {
		t.Fatalf("%d idle awaiters made %d transactions and %d request reads in %v; want none", n+slots, tx, rd, window)
	}
	if max := int64(window/DefaultEpochPoll) + 2; ep > max {
		t.Fatalf("%d epoch reads in %v, want at most %d (one poller)", ep, window, max)
	}

	// One approval wakes its awaiter at once (this replica) and is
	// collected in a transaction.
	o := reqs[n/2]
	if status, body := e.approve(alice.Token, o.PairCode, o.OTP); status != 200 {
		t.Fatalf("approve → %d %v", status, body)
	}
	select {
	case a := <-answers:
		if a.i != n/2 || a.status != 200 || a.body["status"] != "approved" {
			t.Fatalf("awaiter %d → %d %v", a.i, a.status, a.body)
		}
		sessionFrom(t, a.body)
	case <-time.After(5 * time.Second):
		t.Fatal("the approved request's awaiter was not answered")
	}
	if status, _ := e.await(o); status != 409 {
		t.Fatalf("second await → %d, want 409", status)
	}

	// A delivery wakes its rendezvous poll.
	o = reqs[n+1]
	if status, body := e.approve(alice.Token, o.PairCode, o.OTP); status != 200 {
		t.Fatalf("approve → %d %v", status, body)
	}
	deliver := fmt.Sprintf(`{"pair_code":%q,"payload":"AAEC/w=="}`, o.PairCode)
	if status, b, _ := e.raw("POST", "/rendezvous/deliver", alice.Token, deliver); status != 200 {
		t.Fatalf("deliver → %d %v", status, b)
	}
	select {
	case a := <-answers:
		if a.i != n+1 || a.status != 200 || a.body["status"] != "delivered" || a.body["payload"] != "AAEC/w==" {
			t.Fatalf("poller %d → %d %v", a.i, a.status, a.body)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the delivered slot's poll was not answered")
	}
}

// getCtx is a GET with a bearer that reports failures in its answer (for
// goroutines): status 0 if the request failed.
func getCtx(ctx context.Context, url, bearer string) (int, map[string]any) {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return 0, nil
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}
