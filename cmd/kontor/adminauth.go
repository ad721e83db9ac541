package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"kontor.im/kontor/core/gate"
	"kontor.im/kontor/core/storage"
)

// adminOperator guards a mutating admin API endpoint: the caller sends an
// operator's token (`kontor operator add|token`) as
//
//	Authorization: Bearer kontor_op_…
//
// The operator must exist and be enabled, and the access policy must allow
// them action (admin.policy_reload, admin.ldap_sync: the admin role in the
// default policy). The policy engine writes the decision, naming the
// operator, to the audit trail. Without a valid token the answer is 401,
// with one the policy refuses 403; neither runs next.
func (s *Server) adminOperator(action string, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ops, err := operatorStoreOf(s.store)
		if err != nil {
			http.Error(w, "operators are not available", http.StatusServiceUnavailable)
			return
		}
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		token = strings.TrimSpace(token)
		if !ok || token == "" {
			unauthorized(w, "an operator token is required (Authorization: Bearer TOKEN)")
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		op, err := ops.OperatorByTokenHash(ctx, hashOperatorToken(token))
		switch {
		case errors.Is(err, storage.ErrNotFound):
			s.log.Warn("admin API: unknown operator token", "path", r.URL.Path, "remote", r.RemoteAddr)
			unauthorized(w, "unknown operator token")
			return
		case err != nil:
			s.log.Error("admin API: operator lookup failed", "err", err)
			http.Error(w, "operators are not available", http.StatusServiceUnavailable)
			return
		case !tokenMatches(token, op.TokenHash):
			unauthorized(w, "unknown operator token")
			return
		case op.Disabled:
			s.log.Warn("admin API: disabled operator", "operator", op.ID, "path", r.URL.Path)
			unauthorized(w, "the operator is disabled")
			return
		}
		d := s.policy.Access(ctx, gate.AccessInput{Operator: gate.Operator{ID: op.ID, Roles: op.Roles}, Action: action,
			Remote: r.RemoteAddr})
		if !d.Allow {
			http.Error(w, fmt.Sprintf("access denied: %s (%s, decision %s)", d.Message, d.Reason, d.ID), http.StatusForbidden)
			return
		}
		next(w, r)
	}
}

func unauthorized(w http.ResponseWriter, msg string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="kontor-admin"`)
	http.Error(w, msg, http.StatusUnauthorized)
}
