"""The backend: order intake and the provisioning tasks run by Step Functions."""
