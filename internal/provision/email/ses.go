package email

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// maxListPages bounds one poll's listing (1000 keys a page).
const maxListPages = 100

// s3API is the part of *s3.Client the SES backend uses.
type s3API interface {
	s3.ListObjectsV2APIClient
	GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
}

// sesFetcher polls the raw MIME objects an SES receipt rule writes to
// s3://SESBucket/SESPrefix….
type sesFetcher struct {
	s3     s3API
	bucket string
	prefix string
	every  time.Duration
}

func openSES(cfg Config, hc *http.Client) (Fetcher, error) {
	if strings.TrimSpace(cfg.SESBucket) == "" {
		return nil, errors.New("email: the ses backend needs ses_bucket (the S3 bucket the SES receipt rule writes to)")
	}
	opts := []func(*awsconfig.LoadOptions) error{awsconfig.WithDefaultRegion("us-east-1")}
	if cfg.SESRegion != "" {
		opts = append(opts, awsconfig.WithRegion(cfg.SESRegion))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("email: ses backend: load AWS configuration: %w", err)
	}
	if hc != nil {
		// Set on the S3 client only: the SDK refuses a plain *http.Client
		// in LoadDefaultConfig when AWS_CA_BUNDLE is set.
		awsCfg.HTTPClient = hc
	}
	return newSES(cfg, awsCfg), nil
}

// newSES builds the fetcher from an AWS configuration (tests pass static
// credentials).
func newSES(cfg Config, awsCfg aws.Config) *sesFetcher {
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.S3Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.S3Endpoint)
		}
		o.UsePathStyle = cfg.S3PathStyle
	})
	return &sesFetcher{s3: client, bucket: cfg.SESBucket, prefix: cfg.SESPrefix, every: pollInterval(cfg.PollInterval)}
}

func (f *sesFetcher) Fetch(ctx context.Context, q Query) (Message, error) {
	flt, err := newFilter(q)
	if err != nil {
		return Message{}, err
	}
	return poll(ctx, f.every, flt, func(ctx context.Context) (Message, bool, error) {
		return f.check(ctx, flt)
	})
}

func (f *sesFetcher) where() string { return "s3://" + f.bucket + "/" + f.prefix }

func (f *sesFetcher) check(ctx context.Context, flt *filter) (Message, bool, error) {
	// Listing is lexicographic, not by time, and 1000 keys a page: read
	// every page, then sort by LastModified.
	var objs []types.Object
	p := s3.NewListObjectsV2Paginator(f.s3, &s3.ListObjectsV2Input{Bucket: aws.String(f.bucket), Prefix: aws.String(f.prefix)})
	for pages := 0; p.HasMorePages() && pages < maxListPages; pages++ {
		page, err := p.NextPage(ctx)
		if err != nil {
			return Message{}, false, f.s3Error("list", err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			if key == "" || strings.HasSuffix(key, "/") || flt.seen[key] {
				continue
			}
			if o.LastModified != nil && flt.stale(*o.LastModified) {
				flt.seen[key] = true
				flt.scanned++
				flt.reject("stale")
				continue
			}
			if aws.ToInt64(o.Size) > MaxMessageSize {
				flt.seen[key] = true
				flt.reject("too_large")
				continue
			}
			objs = append(objs, o)
		}
	}
	sort.SliceStable(objs, func(i, j int) bool {
		return aws.ToTime(objs[i].LastModified).After(aws.ToTime(objs[j].LastModified))
	})
	for _, o := range objs {
		key := aws.ToString(o.Key)
		out, err := f.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(f.bucket), Key: aws.String(key)})
		if err != nil {
			var nsk *types.NoSuchKey
			if errors.As(err, &nsk) {
				flt.seen[key] = true
				continue
			}
			return Message{}, false, f.s3Error("get", err)
		}
		raw, err := io.ReadAll(io.LimitReader(out.Body, MaxMessageSize+1))
		_ = out.Body.Close()
		if err != nil {
			return Message{}, false, f.s3Error("read", err)
		}
		flt.seen[key] = true
		if len(raw) == 0 {
			flt.reject("empty_body")
			continue
		}
		m, err := ParseMIME(raw)
		if err != nil {
			flt.reject("unparsable")
			continue
		}
		if m.ID == "" {
			m.ID = key
		}
		m.Arrived = aws.ToTime(o.LastModified)
		if flt.match(m) {
			return m, true, nil
		}
	}
	return Message{}, false, nil
}

// s3Error wraps an S3 failure in ErrBackendDown; access and configuration
// errors are permanent. The SDK's messages carry no credentials.
func (f *sesFetcher) s3Error(op string, err error) error {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
			"InvalidToken", "NoSuchBucket", "AllAccessDisabled", "AuthorizationHeaderMalformed",
			"PermanentRedirect", "InvalidBucketName", "AccountProblem":
			return permanent("ses: %s %s: %s: %s", op, f.where(), ae.ErrorCode(), ae.ErrorMessage())
		}
		return down("ses: %s %s: %s: %s", op, f.where(), ae.ErrorCode(), ae.ErrorMessage())
	}
	return down("ses: %s %s: %v", op, f.where(), err)
}
