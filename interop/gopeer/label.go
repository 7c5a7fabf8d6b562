//go:build !memberlist022

package main

import "github.com/hashicorp/memberlist"

// setLabel sets Config.Label (memberlist >= 0.3.0).
func setLabel(cfg *memberlist.Config, label string) error {
	cfg.Label = label
	return nil
}
