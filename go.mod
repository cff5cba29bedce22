module github.com/threatgate/threatgate

go 1.26

require (
	github.com/bmatcuk/doublestar/v4 v4.10.4
	github.com/robfig/cron/v3 v3.0.1
	go.etcd.io/bbolt v1.5.0
	go.yaml.in/yaml/v3 v3.0.6
)

require golang.org/x/sys v0.45.0 // indirect
