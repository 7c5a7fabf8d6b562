//go:build memberlist022

package main

import (
	"errors"

	"github.com/hashicorp/memberlist"
)

// setLabel: memberlist 0.2.2 has no labels.
func setLabel(cfg *memberlist.Config, label string) error {
	if label != "" {
		return errors.New("memberlist 0.2.2 has no labels")
	}
	return nil
}
