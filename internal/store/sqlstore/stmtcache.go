package sqlstore

import (
	"context"
	"database/sql"
	"sync"
)

// maxStmts bounds how many distinct statements stmtCache keeps prepared.
// The store's SQL texts are fixed (lists are bound as one JSON value), so
// the set is small; a text past the bound runs unprepared.
const maxStmts = 256

// stmtCache keeps one prepared statement per SQL text, on SQLite only:
// modernc's SQLite parses and plans every unprepared statement anew,
// which was about a fifth of a credential read's CPU. (pgx already caches
// prepared statements per connection.) A statement is prepared on each
// pool connection the first time it runs there and reused afterwards.
type stmtCache struct {
	db  *sql.DB
	max int      // maxStmts; tests lower it
	m   sync.Map // SQL text -> *sql.Stmt

	mu      sync.Mutex
	n       int             // statements in m
	pending map[string]bool // texts being prepared in the background
	closed  bool
	wg      sync.WaitGroup // background prepares
}

func newStmtCache(db *sql.DB) *stmtCache {
	return &stmtCache{db: db, max: maxStmts, pending: map[string]bool{}}
}

// get returns query's prepared statement, preparing it on a pool
// connection when it is new, or nil when it should run unprepared (the
// cache is full or closed, or preparing failed: running it unprepared
// reports the error). It is for statements outside a transaction: a
// transaction holding a connection must not wait for a second one.
func (c *stmtCache) get(ctx context.Context, query string) *sql.Stmt {
	if st, ok := c.m.Load(query); ok {
		return st.(*sql.Stmt)
	}
	c.mu.Lock()
	full := c.closed || c.n >= c.max
	c.mu.Unlock()
	if full {
		return nil
	}
	st, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		return nil
	}
	return c.add(query, st)
}

// add caches st for query unless another caller won the race or the cache
// is full or closed, and returns the statement to use (nil: unprepared).
func (c *stmtCache) add(query string, st *sql.Stmt) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m.Load(query); ok {
		st.Close()
		return old.(*sql.Stmt)
	}
	if c.closed || c.n >= c.max {
		st.Close()
		return nil
	}
	c.m.Store(query, st)
	c.n++
	return st
}

// lookup returns query's prepared statement if there is one. If there is
// none it returns nil (run it unprepared this time) and prepares it in the
// background, so that a transaction, which holds a connection, never waits
// for another one to prepare on.
func (c *stmtCache) lookup(query string) *sql.Stmt {
	if st, ok := c.m.Load(query); ok {
		return st.(*sql.Stmt)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.n >= c.max || c.pending[query] {
		return nil
	}
	c.pending[query] = true
	c.wg.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), QueryTimeout)
		defer cancel()
		if st, err := c.db.PrepareContext(ctx, query); err == nil {
			c.add(query, st)
		}
		c.mu.Lock()
		delete(c.pending, query)
		c.mu.Unlock()
	})
	return nil
}

// close closes every cached statement; get and lookup answer nil after it.
func (c *stmtCache) close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.wg.Wait()
	c.m.Range(func(k, st any) bool {
		st.(*sql.Stmt).Close()
		c.m.Delete(k)
		return true
	})
}

// cachedExecer runs statements through a stmtCache: on the pool when tx
// is nil, else in tx; e (the pool or tx itself) runs what the cache
// does not hold.
type cachedExecer struct {
	c  *stmtCache
	tx *sql.Tx
	e  execer
}

func (x cachedExecer) stmt(ctx context.Context, query string) *sql.Stmt {
	if x.tx == nil {
		return x.c.get(ctx, query)
	}
	st := x.c.lookup(query)
	if st == nil {
		return nil
	}
	// Reuses the statement when it is already prepared on tx's connection,
	// else prepares it there.
	return x.tx.StmtContext(ctx, st)
}

func (x cachedExecer) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := x.stmt(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return x.e.ExecContext(ctx, query, args...)
}

func (x cachedExecer) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := x.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return x.e.QueryContext(ctx, query, args...)
}

func (x cachedExecer) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := x.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return x.e.QueryRowContext(ctx, query, args...)
}

// uncached returns e without its statement cache, for a statement whose
// text varies (a multi-row INSERT of any length) and would only crowd the
// cache.
func uncached(e execer) execer {
	if d, ok := e.(deadlineExecer); ok {
		if c, ok := d.e.(cachedExecer); ok {
			d.e = c.e
		}
		return d
	}
	return e
}
