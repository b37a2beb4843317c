package ctxjoin

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestAllEndsWhenEveryOneHas(t *testing.T) {
	a, cancelA := context.WithCancel(t.Context())
	b, cancelB := context.WithCancel(t.Context())
	ctx, release := All([]context.Context{a, b})
	defer release()
	if _, ok := ctx.Deadline(); ok {
		t.Error("a deadline, though neither context has one")
	}
	cancelA()
	select {
	case <-ctx.Done():
		t.Fatal("ended when only one of two had")
	case <-time.After(20 * time.Millisecond):
	}
	cancelB()
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("still running after both ended")
	}
}

func TestAllOneIsItself(t *testing.T) {
	cause := errors.New("the caller's reason")
	a, cancel := context.WithCancelCause(t.Context())
	ctx, release := All([]context.Context{a})
	defer release()
	cancel(cause)
	<-ctx.Done()
	if !errors.Is(context.Cause(ctx), cause) {
		t.Errorf("cause %v, want the caller's", context.Cause(ctx))
	}
}
