// Renders an Ollama Modelfile TEMPLATE with Go's own text/template, for the tests.
//
// Input (stdin, JSON): {"template": "...", "cases": [{"messages": [{"role", "content"}], "system": "..."}]}.
// Output (stdout, JSON): the rendered prompt of each case, in order.
// The data has the shape Ollama passes to a chat template: .Messages (Role, Content) and .System;
// the caller prepends the Modelfile's SYSTEM as a system message, as Ollama does.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/template"
)

type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type Case struct {
	Messages []Message `json:"messages"`
	System   string    `json:"system"`
}

type Input struct {
	Template string `json:"template"`
	Cases    []Case `json:"cases"`
}

type Values struct {
	Messages []Message
	System   string
	Prompt   string
	Response string
}

func main() {
	var input Input
	if err := json.NewDecoder(os.Stdin).Decode(&input); err != nil {
		fmt.Fprintln(os.Stderr, "bad input:", err)
		os.Exit(2)
	}
	tmpl, err := template.New("ollama").Parse(input.Template)
	if err != nil {
		fmt.Fprintln(os.Stderr, "template does not parse:", err)
		os.Exit(1)
	}
	out := []string{}
	for _, c := range input.Cases {
		var b strings.Builder
		if err := tmpl.Execute(&b, Values{Messages: c.Messages, System: c.System}); err != nil {
			fmt.Fprintln(os.Stderr, "template failed:", err)
			os.Exit(1)
		}
		out = append(out, b.String())
	}
	json.NewEncoder(os.Stdout).Encode(out)
}
