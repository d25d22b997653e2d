"""Every feature set declared in warehouse/features.py, its definition and its lineage."""

import pyarrow as pa

from warehouse.features import FEATURE_SETS


def model(dbt, session):
    sets = pa.table(
        {
            "model_name": [fs.model_name for fs in FEATURE_SETS.values()],
            "feature_set": [fs.name for fs in FEATURE_SETS.values()],
            "version": pa.array([fs.version for fs in FEATURE_SETS.values()], pa.int32()),
            "description": [fs.description for fs in FEATURE_SETS.values()],
            "timeframe": [fs.timeframe for fs in FEATURE_SETS.values()],
            "feature_columns": [fs.feature_columns() for fs in FEATURE_SETS.values()],
            "label_columns": [fs.label_columns() for fs in FEATURE_SETS.values()],
            "definition": [fs.definition_json() for fs in FEATURE_SETS.values()],
            "definition_sha256": [fs.definition_hash() for fs in FEATURE_SETS.values()],
        }
    )
    data_files = dbt.ref("stg_manifest__data_files").to_arrow_table()
    session.register("sets", sets)
    session.register("data_files", data_files)
    try:
        registry = _registry(session)
    finally:
        session.unregister("sets")
        session.unregister("data_files")
    return registry


def _registry(session):
    return session.sql(
        """
        with files_read as (
            -- a set reads the bars of its timeframe and every corporate action (adjustment)
            select
                sets.model_name,
                data_files.file_id,
                data_files.dataset,
                data_files.path,
                data_files.row_count,
                data_files.min_ts,
                data_files.max_ts,
                data_files.sha256,
                data_files.committed_at
            from sets
            inner join data_files
                on
                    (data_files.dataset = 'bars' and data_files.timeframe = sets.timeframe)
                    or data_files.dataset = 'corporate_actions'
        ),

        lineage as (
            select
                model_name,
                count(*) as data_file_count,
                sum(row_count) as data_file_rows,
                max(committed_at) as last_committed_at,
                sha256(string_agg(sha256, ',' order by path)) as data_files_fingerprint,
                list(
                    {
                        'file_id': file_id,
                        'dataset': dataset,
                        'path': path,
                        'rows': row_count,
                        'min_ts': min_ts,
                        'max_ts': max_ts,
                        'sha256': sha256
                    }
                    order by path
                ) as data_files
            from files_read
            group by all
        )

        select
            sets.*,
            coalesce(lineage.data_file_count, 0) as data_file_count,
            lineage.data_file_rows,
            lineage.last_committed_at,
            lineage.data_files_fingerprint,
            lineage.data_files,
            now() as built_at
        from sets
        left join lineage on sets.model_name = lineage.model_name
        order by sets.model_name
        """
    ).to_arrow_table()
