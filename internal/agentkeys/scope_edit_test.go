package agentkeys

import (
	"errors"
	"slices"
	"testing"
)

func TestScopeEdit(t *testing.T) {
	cur := &Scope{Services: []string{"openai", "aws"}, ReadOnly: true}
	got, err := cur.Edit([]string{"openrouter", "aws"}, []string{"openai", "never-there"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Services, []string{"aws", "openrouter"}) || !got.ReadOnly {
		t.Fatalf("got %+v", got)
	}
	if !slices.Equal(cur.Services, []string{"openai", "aws"}) {
		t.Fatalf("Edit changed its receiver: %+v", cur)
	}
	if _, err := cur.Edit([]string{"x"}, []string{"x"}); err == nil {
		t.Fatal("a service both added and removed was accepted")
	}
	if _, err := cur.Edit([]string{"Bad Name"}, nil); err == nil {
		t.Fatal("an invalid service name was accepted")
	}
	var master *Scope
	if _, err := master.Edit([]string{"x"}, nil); !errors.Is(err, ErrUnrestricted) {
		t.Fatalf("nil scope: %v", err)
	}
	empty, err := (&Scope{Services: []string{"aws"}}).Edit(nil, []string{"aws"})
	if err != nil || empty.Services == nil || len(empty.Services) != 0 {
		t.Fatalf("removing the last service: %+v %v", empty, err)
	}
}
